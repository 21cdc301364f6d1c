/**
 * conformance/out-of-scope.yaml: corpus lines of supported programs that are
 * deliberately not recognised, each with a reason. Validated by zod.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { z } from 'zod';

const entry = z
  .object({
    /** Corpus file path (relative, or a suffix of it) this entry covers; with `match`, only matching lines of it. */
    file: z.string().min(3).optional(),
    /** Exact substring of the line(s) this entry covers. */
    match: z.string().min(3).optional(),
    reason: z.string().min(10, 'say why the line is out of scope'),
  })
  .strict()
  .refine((e) => e.file !== undefined || (e.match !== undefined && e.match.length >= 8), 'give a file, or a match of at least 8 characters so it cannot cover unrelated lines');
export const allowlistSchema = z.object({ entries: z.array(entry) });
export type AllowEntry = z.infer<typeof entry>;

export function allows(e: AllowEntry, file: string, line: string): boolean {
  if (e.file !== undefined && !file.endsWith(e.file)) return false;
  return e.match === undefined || line.includes(e.match);
}

export function loadAllowlist(path: string): AllowEntry[] {
  const doc = parse(readFileSync(path, 'utf8')) as unknown;
  const r = allowlistSchema.safeParse(doc ?? { entries: [] });
  if (!r.success) {
    const msgs = r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new Error(`${path}: ${msgs.join('; ')}`);
  }
  return r.data.entries;
}
