import { describe, expect, it } from 'vitest';
import { normAccount } from './account-util.js';

describe('normAccount', () => {
  it('trims and lowercases, and gives undefined for nothing, whatever came before', () => {
    // alternating inputs: each answer is its own input's, not the previous call's
    const cases: [string | undefined, string | undefined][] = [
      [' Bob@Example.COM ', 'bob@example.com'],
      ['bob@example.com', 'bob@example.com'],
      ['   ', undefined],
      [' Bob@Example.COM ', 'bob@example.com'],
      [undefined, undefined],
      ['ALICE', 'alice'],
      ['alice', 'alice'],
      ['', undefined],
      ['ALICE', 'alice'],
    ];
    for (const [input, want] of cases) expect(normAccount(input)).toBe(want);
  });
});
