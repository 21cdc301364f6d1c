/**
 * The one place where a value becomes SQL text, or a field of a
 * TabSeparated row body (tsvField). Rows travel as JSONEachRow or
 * TabSeparated bodies, never as SQL; only what ClickHouse 18.16 cannot
 * take any other way becomes SQL here: identifiers (the database name in
 * DDL) and the filter values of read queries, because 18.16 has no
 * `{name:Type}` query parameters (they arrived in 19.x) and the same SQL
 * must run on both.
 *
 * ClickHouse's lexer reads a quoted token byte by byte and honours backslash
 * escapes; everything else is taken literally. Escaping the backslash, both
 * quote characters and every control character leaves no byte that could end
 * the token early or be read as something else, whatever the quote used.
 */
import { FloodgateError } from '../core/errors.js';

// Lone UTF-16 surrogates cannot be encoded as UTF-8: Node would silently send
// U+FFFD, so the server would compare against a different string than asked.
const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

const named: Readonly<Record<string, string>> = {
  '\\': '\\\\',
  "'": "\\'",
  '`': '\\`',
  '"': '\\"',
  '\0': '\\0',
  '\b': '\\b',
  '\f': '\\f',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
};

function escapeChar(c: string): string {
  return named[c] ?? `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
}

function escapeBody(value: string, what: string): string {
  if (typeof value !== 'string') throw new FloodgateError('FG_INTERNAL', `${what}: expected a string, got ${typeof value}`);
  if (loneSurrogate.test(value)) throw new FloodgateError('FG_INTERNAL', `${what}: a lone UTF-16 surrogate cannot be sent as UTF-8`);
  return value.replace(/[\\'`"\x00-\x1f\x7f]/g, escapeChar);
}

/** A string literal: `'...'`. */
export function sqlString(value: string): string {
  return `'${escapeBody(value, 'SQL string')}'`;
}

/** A quoted identifier: `` `...` `` (database, table or column name). */
export function sqlIdentifier(name: string): string {
  if (name === '') throw new FloodgateError('FG_INTERNAL', 'SQL identifier: empty');
  return `\`${escapeBody(name, 'SQL identifier')}\``;
}

/** `db`.`table`. */
export function sqlTable(database: string, table: string): string {
  return `${sqlIdentifier(database)}.${sqlIdentifier(table)}`;
}

/** A whole number inlined in SQL (limits, epoch ms): refuses anything but a safe integer. */
export function sqlInt(value: number): string {
  if (!Number.isSafeInteger(value)) throw new FloodgateError('FG_INTERNAL', `SQL integer: ${String(value)} is not a safe integer`);
  return String(value);
}

/** `[ 'a', 'b' ]`: an array of string literals. */
export function sqlStringArray(values: readonly string[]): string {
  return `[${values.map(sqlString).join(', ')}]`;
}

// What ClickHouse's TabSeparated reader treats specially in a field: the
// backslash starts an escape, tab and newline end the field and the row.
// \r and NUL are escaped too: some readers of a body stop at them.
const tsvSpecial = /[\\\t\n\r\0]/;
const tsvSpecialAll = /[\\\t\n\r\0]/g;
const tsvNamed: Readonly<Record<string, string>> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r', '\0': '\\0' };

/**
 * A string as one field of a TabSeparated row: read back by ClickHouse as
 * exactly this string (lone UTF-16 surrogates, which no UTF-8 can carry,
 * arrive as U+FFFD). Most fields need no escape and are returned as they are.
 */
export function tsvField(value: string): string {
  return hasTsvSpecial(value) ? value.replace(tsvSpecialAll, (c) => tsvNamed[c]!) : value;
}

/**
 * The regex is quickest on short fields; on long ones (an event's JSON, some
 * 300 characters, stored for every event) five single-character searches
 * are about four times quicker than it.
 */
function hasTsvSpecial(v: string): boolean {
  if (v.length < 64) return tsvSpecial.test(v);
  return v.indexOf('\\') !== -1 || v.indexOf('\t') !== -1 || v.indexOf('\n') !== -1 || v.indexOf('\r') !== -1 || v.indexOf('\0') !== -1;
}

const tsvUnnamed: Readonly<Record<string, string>> = Object.fromEntries(Object.entries(tsvNamed).map(([c, e]) => [e, c]));
const tsvEscapeAll = /\\[\\tnr0]/g;

/** tsvField backwards, from the same table (for showing a stored row; ClickHouse does its own reading). */
export function unescapeTsvField(field: string): string {
  return field.includes('\\') ? field.replace(tsvEscapeAll, (e) => tsvUnnamed[e]!) : field;
}
