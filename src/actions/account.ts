/**
 * Account names reach actions from log lines and API calls, i.e. from
 * people who may be hostile. Before any command is built, a name must be a
 * plausible mail account, checked here conservatively:
 *
 *   local            (a bare local part, as Zimbra accepts for its default domain)
 *   local@domain
 *
 * local:  1–64 of  A–Z a–z 0–9 . _ + = -  starting with a letter or digit,
 *         no `..`, not ending in `.`
 * domain: dot-separated labels of A–Z a–z 0–9 -, 1–63 each, not starting or
 *         ending with `-` (IDNs in their xn-- form)
 * whole:  at most 254 characters; returned lowercased.
 *
 * Everything else is refused — whitespace, control characters, quotes,
 * `$`, backtick, `;`, `|`, `&`, `/`, `\`, `<>`, `()`, `*`, `?`, `!`, `#`, `%`,
 * `'`, non-ASCII — even where RFC 5321 would allow it in a quoted local part:
 * an account we cannot act on safely is left to a human. The set matters
 * beyond `spawn`: with an `ssh host` prefix the remote side joins the
 * arguments into a shell command line, and none of the accepted characters
 * means anything to a shell. A leading `-` is impossible, so a name can never
 * be read as an option.
 */
import { FloodgateError } from '../core/errors.js';

export const maxAccountLength = 254;
const maxLocalLength = 64;
const maxLabelLength = 63;

function isAlnum(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}
function isLocalChar(c: number): boolean {
  // . _ + = -
  return isAlnum(c) || c === 0x2e || c === 0x5f || c === 0x2b || c === 0x3d || c === 0x2d;
}
function isDomainChar(c: number): boolean {
  return isAlnum(c) || c === 0x2e || c === 0x2d;
}

/** A safe, bounded rendering of a refused value for messages and the audit trail: JSON-escaped (no raw control characters) and cut at 80 characters. */
export function quoteForLog(s: string): string {
  const cut = s.length > 80 ? `${s.slice(0, 80)}…` : s;
  return JSON.stringify(cut);
}

function describe(ch: string): string {
  const c = ch.codePointAt(0) ?? 0;
  const hex = `U+${c.toString(16).toUpperCase().padStart(4, '0')}`;
  if (c === 0x0a) return `a newline (${hex})`;
  if (c === 0x0d) return `a carriage return (${hex})`;
  if (c === 0x09) return `a tab (${hex})`;
  if (c === 0x20 || /\s/u.test(ch)) return `whitespace (${hex})`;
  if (c < 0x20 || c === 0x7f) return `a control character (${hex})`;
  if (c > 0x7e) return `a non-ASCII character (${hex})`;
  return `'${ch}'`;
}

function refuse(raw: string, why: string): never {
  throw new FloodgateError('FG_ACTION_INVALID_ACCOUNT', `refused account ${quoteForLog(raw)}: ${why}`);
}

/**
 * Returns the account lowercased, or throws FG_ACTION_INVALID_ACCOUNT naming
 * the first thing wrong. Pure; runs before anything is started.
 */
export function validateAccount(input: unknown): string {
  if (typeof input !== 'string') throw new FloodgateError('FG_ACTION_INVALID_ACCOUNT', `refused account: expected a string, got ${input === null ? 'null' : typeof input}`);
  const s = input;
  if (s.length === 0) refuse(s, 'it is empty');
  if (s.length > maxAccountLength) refuse(s, `it is ${s.length} characters long (at most ${maxAccountLength})`);

  const at = s.indexOf('@');
  const local = at === -1 ? s : s.slice(0, at);
  const domain = at === -1 ? undefined : s.slice(at + 1);

  for (let i = 0; i < local.length; i++) {
    if (!isLocalChar(local.charCodeAt(i))) refuse(s, `it contains ${describe(String.fromCodePoint(local.codePointAt(i) ?? 0))} at position ${i + 1}`);
  }
  if (local.length === 0) refuse(s, 'the part before @ is empty');
  if (local.length > maxLocalLength) refuse(s, `the part before @ is ${local.length} characters long (at most ${maxLocalLength})`);
  if (!isAlnum(local.charCodeAt(0))) refuse(s, `it starts with ${describe(local[0] ?? '')} (must start with a letter or digit, so it can never be read as an option)`);
  if (local.endsWith('.')) refuse(s, "the part before @ ends with '.'");
  if (local.includes('..')) refuse(s, "the part before @ contains '..'");

  if (domain !== undefined) {
    for (let i = 0; i < domain.length; i++) {
      const c = domain.charCodeAt(i);
      if (c === 0x40) refuse(s, "it contains more than one '@'");
      if (!isDomainChar(c)) refuse(s, `it contains ${describe(String.fromCodePoint(domain.codePointAt(i) ?? 0))} at position ${at + 2 + i}`);
    }
    if (domain.length === 0) refuse(s, 'the domain after @ is empty');
    for (const label of domain.split('.')) {
      if (label.length === 0) refuse(s, 'the domain has an empty label (leading, trailing or double dot)');
      if (label.length > maxLabelLength) refuse(s, `a domain label is ${label.length} characters long (at most ${maxLabelLength})`);
      if (label.startsWith('-') || label.endsWith('-')) refuse(s, `the domain label ${quoteForLog(label)} starts or ends with '-'`);
    }
  }
  return s.toLowerCase();
}

/** validateAccount as an outcome instead of an exception. */
export function checkAccount(input: unknown): { ok: true; account: string } | { ok: false; error: FloodgateError } {
  try {
    return { ok: true, account: validateAccount(input) };
  } catch (e) {
    if (e instanceof FloodgateError) return { ok: false, error: e };
    throw e;
  }
}
