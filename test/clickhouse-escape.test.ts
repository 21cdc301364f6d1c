/**
 * The escaping module without a server: what each hostile character becomes.
 * The round trip through the real server is in test/services/clickhouse-data.test.ts.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sqlIdentifier, sqlInt, sqlString, sqlStringArray, sqlTable, tsvField } from '../src/clickhouse/escape.js';
import { tabSeparated } from '../src/clickhouse/tsv.js';

/** Reads a quoted token back the way ClickHouse's lexer does (backslash escapes, \xHH). */
function unquote(token: string, quote: string): string {
  expect(token.startsWith(quote) && token.endsWith(quote)).toBe(true);
  const body = token.slice(1, -1);
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c === quote) throw new Error(`unescaped ${quote} at ${i} in ${token}`);
    if (c !== '\\') {
      out += c;
      continue;
    }
    const n = body[++i]!;
    const map: Record<string, string> = { '0': '\0', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
    if (n === 'x') {
      out += String.fromCharCode(parseInt(body.slice(i + 1, i + 3), 16));
      i += 2;
    } else out += map[n] ?? n;
  }
  return out;
}

const hostile = [
  "it's",
  "'; DROP TABLE findings; --",
  'back\\slash\\',
  '\\\'',
  '$(reboot)',
  '`id`',
  'a"b',
  'nul\0byte',
  'line\nbreak\r\n',
  'tab\there',
  '\x01\x02\x1f\x7f',
  'ünïcødé 日本語 🙂',
  '{name:String}',
  '?',
  '',
];

describe('sqlString', () => {
  it('escapes quotes, backslashes and control characters; nothing can close the literal early', () => {
    expect(sqlString("it's")).toBe("'it\\'s'");
    expect(sqlString('a\\b')).toBe("'a\\\\b'");
    expect(sqlString('nul\0')).toBe("'nul\\0'");
    expect(sqlString('\n\r\t')).toBe("'\\n\\r\\t'");
    expect(sqlString('\x01\x7f')).toBe("'\\x01\\x7f'");
    expect(sqlString('🙂')).toBe("'🙂'");
    for (const s of hostile) expect(unquote(sqlString(s), "'")).toBe(s);
  });

  it('reads back as the same string for any well-formed text', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.oneof(fc.constantFrom('\0', '\\', "'", '`', '"', '\n', '\r', '\x7f', '\x1b'), fc.string({ unit: 'binary', minLength: 1, maxLength: 1 })), maxLength: 60 }), (s) => {
        const lit = sqlString(s);
        expect(lit).not.toMatch(/[\x00-\x1f\x7f]/);
        expect(unquote(lit, "'")).toBe(s);
      }),
      { numRuns: 500 },
    );
  });

  it('refuses a lone surrogate (it cannot travel as UTF-8) instead of sending something else', () => {
    expect(() => sqlString('a\uD800b')).toThrow(/surrogate/);
    expect(() => sqlString('\uDC00')).toThrow(/surrogate/);
    expect(sqlString('\uD83D\uDE42')).toBe("'🙂'");
  });
});

describe('sqlIdentifier and sqlTable', () => {
  it('backquotes and escapes', () => {
    expect(sqlIdentifier('floodgate')).toBe('`floodgate`');
    expect(sqlIdentifier('we`ird')).toBe('`we\\`ird`');
    expect(sqlTable('db', 'events')).toBe('`db`.`events`');
    for (const s of hostile.filter((x) => x !== '')) expect(unquote(sqlIdentifier(s), '`')).toBe(s);
    expect(() => sqlIdentifier('')).toThrow(/empty/);
  });
});

describe('sqlInt and sqlStringArray', () => {
  it('inlines only safe integers', () => {
    expect(sqlInt(42)).toBe('42');
    expect(sqlInt(-1)).toBe('-1');
    for (const bad of [1.5, NaN, Infinity, 2 ** 60]) expect(() => sqlInt(bad)).toThrow(/safe integer/);
    expect(() => sqlInt('1; DROP' as unknown as number)).toThrow(/safe integer/);
  });

  it('arrays of literals', () => {
    expect(sqlStringArray(['a', "b'"])).toBe("['a', 'b\\'']");
    expect(sqlStringArray([])).toBe('[]');
  });
});

/** Splits a TabSeparated body back into rows of fields, undoing the escapes the way ClickHouse's reader does. */
function readTsv(body: string): string[][] {
  expect(body.endsWith('\n')).toBe(true);
  const unescape: Record<string, string> = { '\\': '\\', t: '\t', n: '\n', r: '\r', '0': '\0' };
  return body
    .slice(0, -1)
    .split('\n')
    .map((line) =>
      line.split('\t').map((f) => {
        expect(f).not.toMatch(/[\r\0]/);
        return f.replace(/\\(.)/g, (_, c: string) => {
          const v = unescape[c];
          if (v === undefined) throw new Error(`unknown escape \\${c} in ${JSON.stringify(f)}`);
          return v;
        });
      }),
    );
}

describe('tsvField and tabSeparated', () => {
  it('escapes backslash, tab, newline, CR and NUL, and leaves other text as it is', () => {
    expect(tsvField('plain user@example.com {"a":1}')).toBe('plain user@example.com {"a":1}');
    expect(tsvField('a\\b\tc\nd\re\0f')).toBe('a\\\\b\\tc\\nd\\re\\0f');
    expect(tsvField('\\N')).toBe('\\\\N'); // never ClickHouse's NULL marker
  });

  it('finds every special character in long fields too (searched another way from 64 characters on)', () => {
    const json = JSON.stringify({ kind: 'delivery', reply: 'x'.repeat(80) });
    expect(tsvField(json)).toBe(json);
    for (const [c, escaped] of [['\\', '\\\\'], ['\t', '\\t'], ['\n', '\\n'], ['\r', '\\r'], ['\0', '\\0']]) {
      for (const at of [0, 40, json.length]) {
        const v = json.slice(0, at) + c! + json.slice(at);
        expect(tsvField(v)).toBe(json.slice(0, at) + escaped! + json.slice(at));
      }
    }
    fc.assert(
      fc.property(fc.string({ unit: 'binary', minLength: 60, maxLength: 300 }), (v) => {
        expect(readTsv(tabSeparated([{ v }])!.body)).toEqual([[v]]);
      }),
    );
  });

  it('any strings and numbers read back as they were, one row per row and one field per column', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ a: fc.string({ unit: 'binary' }), n: fc.integer({ min: 0 }), j: fc.string() }), { minLength: 1, maxLength: 5 }), (rows) => {
        const t = tabSeparated(rows)!;
        expect(t.columns).toEqual(['a', 'n', 'j']);
        expect(readTsv(t.body)).toEqual(rows.map((r) => [r.a, String(r.n), r.j]));
      }),
    );
  });

  it('rows that are not flat, miss a column or hold a non-finite number go as JSONEachRow instead (undefined)', () => {
    expect(tabSeparated([])).toBeUndefined();
    expect(tabSeparated([{ id: 'x', list: ['a'] }])).toBeUndefined();
    expect(tabSeparated([{ id: 'x', n: 1 }, { id: 'y' }])).toBeUndefined();
    expect(tabSeparated([{ id: 'x', n: Number.NaN }])).toBeUndefined();
    expect(tabSeparated([{ id: 'x', ok: true }])).toBeUndefined();
    expect(tabSeparated([{ id: 'x', n: 1.5 }, { id: 'y\tz', n: 0 }])).toEqual({ columns: ['id', 'n'], body: 'x\t1.5\ny\\tz\t0\n' });
  });
});
