/**
 * conformance/out-of-scope.yaml: corpus lines of supported programs that are
 * deliberately not recognised, each with a reason. Validated by zod.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { z } from 'zod';

const entry = z.object({
  /** Exact substring of the line(s) this entry covers. */
  match: z.string().min(8, 'match must be at least 8 characters so it cannot cover unrelated lines'),
  reason: z.string().min(10, 'say why the line is out of scope'),
});
export const allowlistSchema = z.object({ entries: z.array(entry) });
export type AllowEntry = z.infer<typeof entry>;

export function loadAllowlist(path: string): AllowEntry[] {
  const doc = parse(readFileSync(path, 'utf8')) as unknown;
  const r = allowlistSchema.safeParse(doc ?? { entries: [] });
  if (!r.success) {
    const msgs = r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new Error(`${path}: ${msgs.join('; ')}`);
  }
  return r.data.entries;
}
