// validateAccount: plausible mail accounts in, everything a shell or an
// option parser could misread out, with a message naming what is wrong.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FloodgateError } from '../../src/core/errors.js';
import { validateAccount } from '../../src/actions/index.js';

function refusal(s: unknown): string {
  try {
    validateAccount(s);
  } catch (e) {
    expect(e).toBeInstanceOf(FloodgateError);
    expect((e as FloodgateError).code).toBe('FG_ACTION_INVALID_ACCOUNT');
    return (e as FloodgateError).message;
  }
  throw new Error(`accepted ${JSON.stringify(s)}`);
}

describe('validateAccount', () => {
  it.each([
    ['alice@example.com', 'alice@example.com'],
    ['Alice.Smith@Example.COM', 'alice.smith@example.com'],
    ['a_b-c+tag=x@mail.example.co.uk', 'a_b-c+tag=x@mail.example.co.uk'],
    ['admin', 'admin'],
    ['0day@xn--bcher-kva.example', '0day@xn--bcher-kva.example'],
    ['a@x', 'a@x'],
  ])('accepts %j', (s, want) => {
    expect(validateAccount(s)).toBe(want);
  });

  it.each([
    ['$(reboot)@x.com', "'$'"],
    ['a@x.com; rm -rf /', "';' at position 8"],
    ['a@x.com;rm', "';'"],
    ['-a@x', 'starts with'],
    ['a\n@x.com', 'newline'],
    ['a@x.com\r', 'carriage return'],
    ['`id`@x.com', "'`'"],
    ['a|b@x.com', "'|'"],
    ['a&b@x.com', "'&'"],
    ['"a"@x.com', `'"'`],
    ["o'brien@x.com", "'''"],
    ['a/b@x.com', "'/'"],
    ['a\\b@x.com', "'\\'"],
    ['a\tb@x.com', 'tab'],
    ['a\0@x.com', 'control character'],
    ['é@x.com', 'non-ASCII'],
    ['a@@x.com', "more than one '@'"],
    ['a@b@x.com', "more than one '@'"],
    ['@x.com', 'empty'],
    ['a@', 'empty'],
    ['', 'empty'],
    ['.a@x.com', 'starts with'],
    ['+a@x.com', 'starts with'],
    ['a.@x.com', "ends with '.'"],
    ['a..b@x.com', "'..'"],
    ['a@x..com', 'empty label'],
    ['a@.x.com', 'empty label'],
    ['a@-x.com', "starts or ends with '-'"],
    ['a@x_y.com', "'_'"],
    [`${'a'.repeat(65)}@x.com`, 'at most 64'],
    [`a@${'b'.repeat(64)}.com`, 'at most 63'],
    ['x'.repeat(255), 'at most 254'],
    ['a b@x.com', 'whitespace'],
    ['a\u00a0b@x.com', 'whitespace'],
  ])('refuses %j (%s)', (s, why) => {
    expect(refusal(s)).toContain(why);
  });

  it('refuses non-strings', () => {
    expect(refusal(undefined)).toContain('expected a string');
    expect(refusal(42)).toContain('expected a string');
    expect(refusal(null)).toContain('null');
  });

  it('quotes the refused value safely (no raw control characters in the message)', () => {
    expect(refusal('a\n@x.com; rm -rf /')).toMatch(/^refused account "a\\n@x\.com; rm -rf \/": it contains a newline/);
    expect(refusal('y'.repeat(300)).length).toBeLessThan(200);
  });

  it('whatever it accepts is shell-inert, never an option, and bounded', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.stringMatching(/^[A-Za-z0-9._+=@-]{1,40}$/), fc.emailAddress()), (s) => {
        let v: string;
        try {
          v = validateAccount(s);
        } catch {
          return;
        }
        expect(v).toMatch(/^[a-z0-9][a-z0-9._+=-]*(@[a-z0-9.-]+)?$/);
        expect(v.length).toBeLessThanOrEqual(254);
        expect(validateAccount(v)).toBe(v);
      }),
      { numRuns: 3000 },
    );
  });
});
