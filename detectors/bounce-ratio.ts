/**
 * bounce-ratio: a large share of an account's recipients fail. Spam sent
 * through a stolen account goes to harvested or guessed addresses and hits
 * receivers that refuse it, so bounces and deferrals spike; a real person's
 * mail mostly reaches people who exist.
 *
 * Per SASL account (Message.saslUser, lowercased; messages without one are
 * ignored), over a sliding window (default 1 h), count recipients and failed
 * recipients. A recipient is counted from its final status in the message;
 * hand-offs to a content filter (Recipient.viaFilter: the real outcome is
 * not known yet) are skipped. A message held in the queue (a recipient
 * still deferred on a retry 10 min after its first deferral: receivers
 * throttling a spam run keep it there for days) has its recipients counted
 * as they settle instead (Detector.settled), a deferred one as failed then;
 * the finished message counts only those not counted so (Recipient.settled).
 * A held message's local recipients still deferred are not counted at all:
 * that is our own mailbox server away, which delays every account's mail.
 * Failed = status bounced, deferred, expired, softbounce or undeliverable,
 * or any 5xx dsn. (A deferral later followed by a successful delivery ends
 * as `sent` and is not a failure: greylisting is normal.)
 *
 * Flag when the window holds at least minRecipients (20) recipients and the
 * failed share exceeds `threshold` (0.3). Signal `bounce-spike` (a compromise
 * signal). Severity from the share: medium above the threshold, high from
 * 0.5, critical from 0.8; score 40 at the threshold rising linearly to 100
 * at a share of 1. At most one finding per account per cooldown (30 min).
 * Evidence: the last messages that had failures (per account, in a
 * Samples structure), each noted with up to two failed addresses and their dsn.
 */
import { z } from 'zod';
import type { Message, Recipient } from '../src/correlator/message.js';
import type { Evidence, Finding, Severity } from '../src/detect/finding.js';
import { domainOf } from '../src/detect/site.js';
import { messageTs, passCooldown, recipientCounter } from './account-util.js';
import { defineDetector } from './types.js';
import { fmtMs } from './volume-util.js';

const config = z.object({
  /** Sliding window (ms). */
  windowMs: z.number().int().positive().default(3600_000),
  /** Fewest recipients in the window before a share means anything. */
  minRecipients: z.number().int().positive().default(20),
  /** Flag when failed / recipients exceeds this (0..1). */
  threshold: z.number().min(0).max(1).default(0.3),
  /** Count deferred recipients (still queued or given up on) as failed. */
  countDeferred: z.boolean().default(true),
  /** At most one finding per account per this long (ms). */
  cooldownMs: z.number().int().nonnegative().default(30 * 60_000),
  /** Recent failing messages kept per account as evidence (≤ 10). */
  evidenceSamples: z.number().int().min(1).max(10).default(8),
  /** Most accounts tracked per structure. */
  maxKeys: z.number().int().positive().default(100_000),
});

// total + failed·PACK in one counter (total < 2^21 per window)
const PACK = 2 ** 21;
// evidence sample: file, offset, ts, queueId, failed, total, addr1, dsn1, addr2, dsn2 (offset and time in 32-bit cells, queue ids and DSNs in bytes, counts in 32 bits: see Samples)
const SAMPLE_FIELDS = 'sutciiscsc';

function dsnOf(r: Recipient): string {
  return r.dsn !== undefined ? `${r.dsn} ${r.status}` : r.status;
}

export const bounceRatioDetector = defineDetector({
  id: 'bounce-ratio',
  description: "A large share of an account's recipients bounce or are deferred",
  config,
  events: [],
  messages: true,
  settled: true,
  create(cfg, { store, site, emit, owner }) {
    const maxKeys = cfg.maxKeys;
    const counts = store.counter('recipients', { windowMs: cfg.windowMs, buckets: 12, maxKeys });
    const cooldown = store.recent<number>('cooldown', { ttlMs: cfg.cooldownMs, maxKeys });
    const ring = store.samples('samples', { ttlMs: cfg.windowMs, maxKeys, size: cfg.evidenceSamples, fields: SAMPLE_FIELDS });
    const row: (string | number)[] = ['', 0, 0, '', 0, 0, '', '', '', '']; // reused: no allocation per message
    const label = fmtMs(cfg.windowMs);
    const countDeferred = cfg.countDeferred;

    function failed(r: Recipient): boolean {
      switch (r.status) {
        case 'bounced':
        case 'expired':
        case 'softbounce':
        case 'undeliverable':
          return true;
        case 'deferred':
          return countDeferred || (r.dsn !== undefined && r.dsn.charCodeAt(0) === 53); // '5'
        default:
          return r.dsn !== undefined && r.dsn.charCodeAt(0) === 53;
      }
    }

    return recipientCounter(count);

    /** A finished message's recipients not settled before (settledNow false), or those a held message settled now. */
    function count(m: Message, settledNow: boolean): void {
      const user = m.saslUser;
      if (user === undefined || user === '' || !owner.account(user)) return;
      const list = m.recipients;
      let total = 0;
      let bad = 0;
      let f1 = -1;
      let f2 = -1;
      for (let i = 0; i < list.length; i++) {
        const r = list[i]!;
        if (r.viaFilter === true || (!settledNow && r.settled === true)) continue;
        // Our own mailboxes deferring (a mailbox server down or restarting) is our outage, not a receiver refusing spam.
        if (settledNow && r.status === 'deferred' && site.isLocalDomain(domainOf(r.address))) continue;
        total++;
        if (failed(r)) {
          bad++;
          if (f1 < 0) f1 = i;
          else if (f2 < 0) f2 = i;
        }
      }
      if (total === 0) return;
      const key = user.toLowerCase();
      const ts = messageTs(m);
      const packed = counts.add(key, ts, total + bad * PACK);
      const badW = Math.floor(packed / PACK);
      const totalW = packed - badW * PACK;
      if (bad > 0) remember(key, ts, m, bad, total, f1, f2);

      if (totalW < cfg.minRecipients) return;
      const share = badW / totalW;
      if (share <= cfg.threshold) return;
      // Once per cooldown, unless the severity climbs: a growing flood is reported as it grows.
      if (!passCooldown(cooldown, key, ts, share >= 0.8 ? 'critical' : share >= 0.5 ? 'high' : 'medium')) return;
      emit(finding(key, ts, share, badW, totalW));
    }

    function remember(key: string, ts: number, m: Message, bad: number, total: number, f1: number, f2: number): void {
      const a = m.recipients[f1]!;
      const b = f2 >= 0 ? m.recipients[f2] : undefined;
      // the samples store copy what they keep (never views into log lines)
      row[0] = m.src.file;
      row[1] = m.src.offset;
      row[2] = m.firstTs;
      row[3] = m.queueId;
      row[4] = bad;
      row[5] = total;
      row[6] = a.address;
      row[7] = dsnOf(a);
      row[8] = b !== undefined ? b.address : '';
      row[9] = b !== undefined ? dsnOf(b) : '';
      ring.add(key, ts, row);
    }

    function finding(key: string, ts: number, share: number, bad: number, total: number): Finding {
      const thr = cfg.threshold;
      const severity: Severity = share >= 0.8 ? 'critical' : share >= 0.5 ? 'high' : 'medium';
      const score = Math.max(0, Math.min(100, Math.round(40 + (60 * (share - thr)) / Math.max(1e-9, 1 - thr))));
      const evidence: Evidence[] = [];
      const sample: { address: string; dsn: string }[] = [];
      for (const r of ring.get(key, ts) ?? []) {
        const a1 = r[6] as string;
        const a2 = r[8] as string;
        const bad1 = r[4] as number;
        const rcpts = a2 !== '' ? `${a1} (${String(r[7])}), ${a2} (${String(r[9])})` : `${a1} (${String(r[7])})`;
        evidence.push({
          file: r[0] as string,
          offset: r[1] as number,
          ts: r[2] as number,
          note: `queue ${String(r[3])}: ${bad1} of ${String(r[5])} recipient(s) failed: ${rcpts}${bad1 > 2 ? ', ...' : ''}`,
        });
        sample.push({ address: a1, dsn: r[7] as string });
        if (a2 !== '') sample.push({ address: a2, dsn: r[9] as string });
      }
      const pct = Math.round(share * 100);
      return {
        type: 'finding',
        detector: 'bounce-ratio',
        entity: { kind: 'account', id: key },
        severity,
        score,
        ts,
        signals: ['bounce-spike'],
        summary: `${bad} of ${total} recipients (${pct}%) of mail from ${key} bounced or were deferred in the last ${label}, above the ${Math.round(thr * 100)}% threshold.`,
        window: {
          windowMs: cfg.windowMs,
          recipients: total,
          failed: bad,
          share: Math.round(share * 1000) / 1000,
          threshold: thr,
          minRecipients: cfg.minRecipients,
          sampleFailures: sample.slice(-10),
        },
        evidence: evidence.slice(-10),
      };
    }
  },
});
