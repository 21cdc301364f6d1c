/**
 * Which queue ids an account's mail is on hold under, from its audit trail:
 * what the successful, real (not dry-run) holds since its latest successful
 * unlock recorded in `data.queueIds`, less what releases since then freed.
 * An unlock ends a lock episode: mail kept on hold through it (an operator
 * unlocking without release, to delete the spam first) is not released by a
 * later episode's unlock. Read from the durable records, so a restart, or
 * the API being another process than the one that held (distributed mode),
 * does not forget them.
 */
import { isQueueId } from './hold-queue.js';

/** The fields of an ActionRecord this reads (records as the stores give them back). */
export interface HeldRecord {
  action: string;
  ok: boolean;
  dryRun: boolean;
  data?: Record<string, unknown>;
}

/** `records`: one account's, oldest first. */
export function heldQueueIds(records: readonly HeldRecord[]): string[] {
  const held = new Set<string>();
  for (const r of records) {
    if (!r.ok || r.dryRun) continue;
    if (r.action === 'unlock') held.clear();
    else if (r.action === 'hold' || r.action === 'release') {
      const ids = r.data?.queueIds;
      if (!Array.isArray(ids)) continue;
      for (const id of ids) {
        if (!isQueueId(id)) continue;
        if (r.action === 'hold') held.add(id);
        else held.delete(id);
      }
    }
  }
  return [...held];
}
