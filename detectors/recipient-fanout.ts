/**
 * recipient-fanout: an authenticated account mails an unusually wide spread
 * of external recipients and domains — the shape of spam sent through a
 * stolen account (one message each to hundreds of unrelated domains), as
 * opposed to a lot of mail to the same few correspondents.
 *
 * Per SASL account (Message.saslUser, lowercased; messages without one are
 * ignored), over a sliding window (default 1 h), each recipient counted when
 * its message ends or, for a message held in the queue, as it settles (see
 * bounce-ratio and Detector.settled):
 * - distinct external recipient domains and distinct external recipients
 *   (DistinctCounters, at most maxDomainsTracked / maxRecipientsTracked values
 *   per account: past the cap counts are lower bounds and the finding says so);
 * - how many of those were NEW in the window (not seen from this account
 *   within the last window), as sliding counts;
 * - local recipients (site.isLocalDomain, or no domain) are counted apart
 *   (window.localRecipients) and never trigger: an announcement to 300
 *   colleagues is not fan-out.
 *
 * Thresholds:
 * 1. Not enough history: fixed — more than maxDomains (50) distinct external
 *    domains or maxRecipients (300) distinct external recipients in the
 *    window; per-account overrides in `thresholdsByAccount`.
 * 2. Enough history (decayed weight ≥ baselineMinPeriods = 24 windows; quiet
 *    windows count as zeros): the account's own Baselines of NEW domains and
 *    NEW recipients per window (half-life 7 days) take precedence. Flag when
 *    the window's new-domain (new-recipient) count exceeds
 *        max(minVolume, mean + k·max(σ, √mean), minRatio·mean)
 *    (k 4, minVolume 20 domains / 100 recipients, minRatio 2). The
 *    per-account thresholds no longer apply then: they are distinct counts
 *    declared for the learning period. Novelty, not the distinct count, is
 *    compared with the baseline: a newsletter mailing the same 500 domains
 *    all day has 500 distinct domains per hour but few new ones, and its
 *    baseline of new ones is what it learns; a spammer's domains are all new.
 *    The account's first period is learned as 0 new (everything is "new"
 *    when nothing is remembered yet: an artefact, not behaviour).
 *    Learning is winsorised (a mature account's window never teaches more
 *    than its threshold), so an attack does not raise the bar for the next.
 *
 * Signal `fanout`; severity/score from observed/threshold (see
 * volume-util gradeRatio). At most one finding per account per cooldown
 * (30 min). Evidence: the last messages' sources (Samples) with their
 * external recipient counts; window.sampleDomains lists recent domains.
 */
import { z } from 'zod';
import type { Message } from '../src/correlator/message.js';
import type { Evidence, Finding } from '../src/detect/finding.js';
import { domainOf } from '../src/detect/site.js';
import type { BaselineView } from '../src/detect/windows.js';
import { messageTs, passCooldown, recipientCounter } from './account-util.js';
import { defineDetector } from './types.js';
import { fmtMs, gradeRatio, learnedThreshold, round1, unlearn } from './volume-util.js';

const override = z
  .object({
    maxDomains: z.number().int().positive().optional(),
    maxRecipients: z.number().int().positive().optional(),
  })
  .strict();

const config = z.object({
  /** Sliding window (ms); also the baselines' period. */
  windowMs: z.number().int().positive().default(3600_000),
  /** Fixed thresholds (accounts without enough history): distinct external domains / recipients per window. */
  maxDomains: z.number().int().positive().default(50),
  maxRecipients: z.number().int().positive().default(300),
  /** Per-account fixed thresholds (keys: SASL usernames, case-insensitive), e.g. for a newsletter's first day; once the account's baseline is mature it alone applies. */
  thresholdsByAccount: z.record(z.string(), override).default({}),
  /** Distinct values remembered per account per window (memory bound); keep above the thresholds. */
  maxDomainsTracked: z.number().int().positive().default(1000),
  maxRecipientsTracked: z.number().int().positive().default(3000),
  /** Baseline half-life (ms). */
  baselineHalfLifeMs: z.number().positive().default(7 * 86_400_000),
  /** Windows of history (decayed weight) before the baseline takes precedence over the fixed thresholds. */
  baselineMinPeriods: z.number().nonnegative().default(24),
  /** Standard deviations above the learned mean. */
  baselineK: z.number().positive().default(4),
  /** Learned thresholds are never below these (new domains / new recipients per window). */
  baselineMinDomains: z.number().nonnegative().default(20),
  baselineMinRecipients: z.number().nonnegative().default(100),
  /** Learned thresholds are never below minRatio × mean. */
  baselineMinRatio: z.number().min(1).default(2),
  /** At most one finding per account per this long (ms). */
  cooldownMs: z.number().int().nonnegative().default(30 * 60_000),
  /** Recent messages kept per account as evidence (≤ 10). */
  evidenceSamples: z.number().int().min(1).max(10).default(8),
  /** Most accounts tracked per structure. */
  maxKeys: z.number().int().positive().default(100_000),
});

type Metric = 'domains' | 'recipients';
// evidence sample: file, offset, ts, queueId, external recipients, local recipients (offset and time in 32-bit cells, queue id in bytes, counts in 32 bits: see Samples)
const SAMPLE_FIELDS = 'sutcii';
const PACK = 2 ** 21;

export const recipientFanoutDetector = defineDetector({
  id: 'recipient-fanout',
  description: 'An account mails an unusual number of distinct external recipients or domains (fixed thresholds, then its own learned baseline)',
  config,
  events: [],
  messages: true,
  settled: true,
  create(cfg, { store, site, emit, owner }) {
    const maxKeys = cfg.maxKeys;
    const windowMs = cfg.windowMs;
    const domains = store.distinct('domains', { windowMs, maxPerKey: cfg.maxDomainsTracked, maxKeys });
    // only counted, never listed: hashes, not the addresses
    const rcpts = store.distinct('recipients', { windowMs, maxPerKey: cfg.maxRecipientsTracked, maxKeys, keepValues: false });
    // new domains + new recipients·PACK in one counter (new domains < 2^21 per window)
    const fresh = store.counter('new', { windowMs, buckets: 12, maxKeys });
    const local = store.counter('local', { windowMs, buckets: 12, maxKeys });
    const baseOpts = { periodMs: windowMs, halfLifeMs: cfg.baselineHalfLifeMs, maxKeys };
    const domBase = store.baseline('new-domains', baseOpts);
    const rcptBase = store.baseline('new-recipients', baseOpts);
    const cooldown = store.recent<number>('cooldown', { ttlMs: cfg.cooldownMs, maxKeys });
    const ring = store.samples('samples', { ttlMs: windowMs, maxKeys, size: cfg.evidenceSamples, fields: SAMPLE_FIELDS });
    const row: (string | number)[] = ['', 0, 0, '', 0, 0]; // reused: no allocation per message

    const byAccount = new Map(Object.entries(cfg.thresholdsByAccount).map(([k, v]) => [k.toLowerCase(), v]));
    const domOpts = { k: cfg.baselineK, minVolume: cfg.baselineMinDomains, minRatio: cfg.baselineMinRatio };
    const rcptOpts = { k: cfg.baselineK, minVolume: cfg.baselineMinRecipients, minRatio: cfg.baselineMinRatio };
    const label = fmtMs(windowMs);

    return recipientCounter(count);

    /** A finished message's recipients not settled before (settledNow false), or those a held message settled now. */
    function count(m: Message, settledNow: boolean): void {
      const user = m.saslUser;
      if (user === undefined || user === '' || !owner.account(user)) return;
      const key = user.toLowerCase();
      const ts = messageTs(m);
      const list = m.recipients;

      let ext = 0;
      let loc = 0;
      let newDom = 0;
      let newRcpt = 0;
      let domCount = 0;
      let rcptCount = 0;
      let capped = false;
      for (let i = 0; i < list.length; i++) {
        if (!settledNow && list[i]!.settled === true) continue;
        const addr = list[i]!.address;
        const d = domainOf(addr);
        if (d === '' || site.isLocalDomain(d)) {
          loc++;
          continue;
        }
        ext++;
        const a = domains.add(key, d, ts);
        if (a.isNew) newDom++;
        domCount = a.count;
        const b = rcpts.add(key, addr.toLowerCase(), ts);
        if (b.isNew) newRcpt++;
        rcptCount = b.count;
        capped ||= a.capped || b.capped;
      }
      if (loc > 0) local.add(key, ts, loc);
      // every message starts/advances the history clock, even an internal one
      const db = domBase.add(key, ts, newDom);
      const rb = rcptBase.add(key, ts, newRcpt);
      if (db.weight === 0 && (newDom > 0 || newRcpt > 0)) {
        // cold start: in the account's first period everything is "new" by
        // construction (nothing remembered yet); learning it would set a
        // mean that the slow decay keeps for weeks. Learn that period as 0.
        domBase.add(key, ts, -newDom);
        rcptBase.add(key, ts, -newRcpt);
      }
      if (ext === 0) return;

      const packed = fresh.add(key, ts, newDom + newRcpt * PACK);
      const newRcptsW = Math.floor(packed / PACK);
      const newDomsW = packed - newRcptsW * PACK;

      row[0] = m.src.file;
      row[1] = m.src.offset;
      row[2] = m.firstTs;
      row[3] = m.queueId;
      row[4] = ext;
      row[5] = loc;
      ring.add(key, ts, row);

      const mature = db.weight >= cfg.baselineMinPeriods;
      let tD: number, tR: number, vD: number, vR: number;
      if (mature) {
        tD = learnedThreshold(db, domOpts);
        tR = learnedThreshold(rb, rcptOpts);
        vD = newDomsW;
        vR = newRcptsW;
        const xd = unlearn(newDom, db, tD);
        if (xd > 0) domBase.add(key, ts, -xd);
        const xr = unlearn(newRcpt, rb, tR);
        if (xr > 0) rcptBase.add(key, ts, -xr);
      } else {
        const acct = byAccount.get(key);
        tD = acct?.maxDomains ?? cfg.maxDomains;
        tR = acct?.maxRecipients ?? cfg.maxRecipients;
        vD = domCount;
        vR = rcptCount;
      }

      let worst: Metric = 'domains';
      let ratio = vD / tD;
      if (vR / tR > ratio) {
        ratio = vR / tR;
        worst = 'recipients';
      }
      if (ratio <= 1) return;
      // Once per cooldown, unless the severity climbs: a growing flood is reported as it grows.
      if (!passCooldown(cooldown, key, ts, gradeRatio(ratio).severity)) return;
      emit(finding(key, ts, worst, ratio, mature, db, rb, { vD, vR, tD, tR, domCount, rcptCount, newDomsW, newRcptsW, capped }));
    }

    function finding(
      key: string,
      ts: number,
      worst: Metric,
      ratio: number,
      mature: boolean,
      db: BaselineView,
      rb: BaselineView,
      n: { vD: number; vR: number; tD: number; tR: number; domCount: number; rcptCount: number; newDomsW: number; newRcptsW: number; capped: boolean },
    ): Finding {
      const { severity, score } = gradeRatio(ratio);
      const localRecipients = local.get(key, ts);
      const atLeast = n.capped ? 'at least ' : '';
      let summary: string;
      const t = Math.round(worst === 'domains' ? n.tD : n.tR);
      if (mature) {
        const b = worst === 'domains' ? db : rb;
        const v = worst === 'domains' ? n.newDomsW : n.newRcptsW;
        summary =
          `${key} mailed ${atLeast}${v} new external ${worst} in the last ${label}, above its learned threshold of ${t} ` +
          `(usually ${round1(b.mean)} ± ${round1(b.std)} new per ${label}; ${n.domCount} domains, ${n.rcptCount} external and ${localRecipients} local recipients in the window).`;
      } else {
        const v = worst === 'domains' ? n.domCount : n.rcptCount;
        summary =
          `${key} mailed ${atLeast}${v} distinct external ${worst} in the last ${label}, above the fixed threshold of ${t} ` +
          `(${n.domCount} domains, ${n.rcptCount} external and ${localRecipients} local recipients; not enough history for a baseline yet).`;
      }
      const evidence: Evidence[] = [];
      for (const r of ring.get(key, ts) ?? []) {
        evidence.push({
          file: r[0] as string,
          offset: r[1] as number,
          ts: r[2] as number,
          note: `queue ${String(r[3])}: ${String(r[4])} external, ${String(r[5])} local recipient(s)`,
        });
      }
      return {
        type: 'finding',
        detector: 'recipient-fanout',
        entity: { kind: 'account', id: key },
        severity,
        score,
        ts,
        signals: ['fanout'],
        summary,
        window: {
          mode: mature ? 'baseline' : 'fixed',
          trigger: worst,
          ratio: Math.round(ratio * 100) / 100,
          windowMs,
          domains: n.domCount,
          recipients: n.rcptCount,
          newDomains: n.newDomsW,
          newRecipients: n.newRcptsW,
          localRecipients,
          capped: n.capped,
          thresholds: { domains: Math.round(n.tD), recipients: Math.round(n.tR) },
          baseline: {
            newDomainsMean: round1(db.mean),
            newDomainsStd: round1(db.std),
            newRecipientsMean: round1(rb.mean),
            newRecipientsStd: round1(rb.std),
            periods: round1(db.weight),
            mature,
          },
          sampleDomains: domains.values(key, ts).slice(-10),
        },
        evidence: evidence.slice(-10),
      };
    }
  },
});