import { describe, expect, it } from 'vitest';
import { storedMetadata, storedTimestamp } from '../src/distributed/parse-stage.js';

describe('the timestamp committed with the parse stage\'s stored offset', () => {
  it('goes there and back', () => {
    const ts = Date.UTC(2026, 11, 7, 15, 0, 0);
    expect(storedTimestamp(storedMetadata(ts))).toBe(ts);
  });

  it('is left out when there is none, and read as none from anything else (an older version committed no metadata)', () => {
    expect(storedMetadata(undefined)).toBeNull();
    expect(storedMetadata(Number.NaN)).toBeNull();
    expect(storedMetadata(-5)).toBeNull();
    for (const m of [null, undefined, '', 'x', '{', '{"recordTs":"1"}', '{"recordTs":-1}', '{"recordTs":1.5}', '{"other":1}', '[1]']) {
      expect(storedTimestamp(m)).toBeUndefined();
    }
  });
});
