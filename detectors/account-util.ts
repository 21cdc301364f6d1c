/**
 * Small helpers shared by the account-oriented detectors (sender-mismatch,
 * auth-attack, login-anomaly, plaintext-auth, rbl). Pure functions (normAccount
 * memoises its last call): detector state lives in the ScopedStore each
 * detector is handed.
 */
import type { Event } from '../src/core/events.js';
import type { Message } from '../src/correlator/message.js';
import type { Source } from '../src/core/record.js';
import { severityRank, type Evidence, type Severity } from '../src/detect/finding.js';
import type { Recent } from '../src/detect/windows.js';

/**
 * The last account normalised, and its result: the detectors reading an
 * event each normalise its account, one after the other. A memo of a pure
 * function (it changes no result), so it is the one thing here kept between
 * calls.
 */
let memoRaw: string | undefined;
let memoNorm: string | undefined;

/**
 * A login a detector may learn from (part of its `reads` test): a successful
 * one with an account and an IP, or an SMTP AUTH submission.
 */
export function isAccountLogin(e: Event): boolean {
  return (e.kind === 'auth' && e.outcome === 'success' && e.ip !== undefined && e.account !== undefined) || (e.kind === 'smtp.client' && e.account !== undefined);
}

/** Account names compared case-insensitively; `user` and `user@domain` are kept as given. */
export function normAccount(a: string | undefined): string | undefined {
  if (a === undefined) return undefined;
  if (a === memoRaw) return memoNorm;
  const t = a.trim().toLowerCase();
  const s = t.length === 0 ? undefined : t;
  memoRaw = a;
  memoNorm = s;
  return s;
}

export function evidence(src: Source, ts: number, note?: string): Evidence {
  return note === undefined ? { file: src.file, offset: src.offset, ts } : { file: src.file, offset: src.offset, ts, note };
}

/**
 * Append to a bounded sample list: the first `max - 1` entries are kept and
 * the last slot always holds the newest, so a finding shows how it started
 * and where it is now. Mutates and returns `arr`.
 */
export function pushSample<T>(arr: T[], v: T, max: number): T[] {
  if (arr.length < max) arr.push(v);
  else arr[max - 1] = v;
  return arr;
}

/** Add `v` to a small list of distinct strings (no-op when present or full). */
export function addDistinct(arr: string[], v: string, max: number): string[] {
  if (arr.length < max && !arr.includes(v)) arr.push(v);
  return arr;
}


/**
 * A message's time for windows and cooldowns: its last line's, or when the
 * correlator let it go when that was later (Message.emittedTs). Windows and
 * cooldowns then only move forward, so whether a sweep already dropped a
 * key cannot change what a message finds.
 */
export function messageTs(m: Message): number {
  return m.emittedTs ?? m.lastTs;
}

/**
 * The handlers of a detector that counts a message's recipients and reads
 * settled ones (Detector.settled): a held message's recipients are counted
 * as they settle (settledNow), and the finished message counts only those
 * that were not (Recipient.settled), so each recipient is counted once.
 */
export function recipientCounter(count: (m: Message, settledNow: boolean) => void): { onMessage(m: Message): void; onSettled(m: Message): void } {
  return {
    onMessage: (m) => count(m, false),
    onSettled: (m) => count(m, true),
  };
}

/**
 * Cooldown gate: true (and remembered) when nothing of this severity or
 * higher was emitted for `key` within the cooldown (the Recent's TTL).
 * A higher severity passes the gate once, so an escalation is reported.
 */
export function passCooldown(cool: Recent<number>, key: string, ts: number, severity: Severity): boolean {
  const r = severityRank[severity];
  const prev = cool.get(key, ts);
  if (prev !== undefined && prev >= r) return false;
  cool.set(key, ts, r);
  return true;
}

export function clampScore(n: number): number {
  return n < 0 ? 0 : n > 100 ? 100 : Math.round(n);
}

/** `3600000` → `1 h`, `600000` → `10 min`, `90000` → `90 s`. */
export function fmtDuration(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000} d`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  return `${Math.round(ms / 1000)} s`;
}
