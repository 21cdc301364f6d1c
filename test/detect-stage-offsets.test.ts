import { describe, expect, it } from 'vitest';
import { pastFiltered } from '../src/distributed/detect-stage.js';

describe('pastFiltered: where the detect stage resumes after a fetched batch', () => {
  it('moves past markers and aborted records at the end of a batch that began within the state', () => {
    // Records 10..14 processed (next 15), offset 15 the transaction's marker.
    expect(pastFiltered(15n, '10', '15')).toBe(16n);
    // A fetch of nothing but a marker, right at the state.
    expect(pastFiltered(15n, '15', '15')).toBe(16n);
  });

  it('never moves back, and never forward over a batch that began past the state', () => {
    expect(pastFiltered(20n, '10', '15')).toBe(20n);
    expect(pastFiltered(15n, '17', '18')).toBe(15n);
    expect(pastFiltered(15n, null, '18')).toBe(15n);
  });
});
