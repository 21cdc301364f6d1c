/**
 * What picks an account's mail out of the Postfix queue for hold.
 *
 * postqueue shows each message's envelope sender, not the account that
 * submitted it, and a spam run through a stolen account forges a new sender
 * per message. So hold looks for the account's own address, the senders the
 * account was seen using, and the queue ids the logs tie to the account
 * (its submissions and their content-filter re-injections, the id deferred
 * mail waits under). Only ids postqueue lists are ever held.
 */
export interface QueuedMailHints {
  senders: string[];
  queueIds: string[];
}

/**
 * Sync where the lookup is in memory (standalone), async where it queries
 * ClickHouse (distributed). `at`: the event time of the decision that locks
 * (absent for an operator's lock: now).
 */
export type QueuedMailLookup = (account: string, at?: number) => QueuedMailHints | Promise<QueuedMailHints>;

/**
 * How far back a lookup from stored events looks for the account's queue
 * ids. Postfix keeps deferred mail up to 5 days (maximal_queue_lifetime),
 * but a spam run worth holding is the one still being retried, and the
 * lookup reads the events table's json over this span. Older mail is still
 * held when its sender is the account's or one it used.
 */
export const HOLD_LOOKBACK_MS = 24 * 3600_000;

/**
 * The lookup's answer as HoldOptions fields. A failed lookup (ClickHouse
 * away) must not stop the hold by the account's own address: its error is
 * carried into the hold record instead. A sync lookup has answered by the
 * time this returns its promise, so callers can ask before they await.
 */
export async function queuedMailHints(lookup: QueuedMailLookup | undefined, account: string, at?: number): Promise<Partial<QueuedMailHints> & { hintsError?: string }> {
  if (!lookup) return {};
  try {
    return await lookup(account, at);
  } catch (e) {
    return { hintsError: e instanceof Error ? e.message : String(e) };
  }
}
