/**
 * send-flood: an authenticated account sends far more mail than it should.
 *
 * Per SASL account (Message.saslUser, lowercased; messages without one are
 * ignored), two sliding windows (default 10 min "short" and 1 h "long")
 * count messages and recipients (recipients = max(recipient records, nrcpt)).
 * Each count is compared with a threshold; the first count above its
 * threshold raises a `volume` finding, at most once per cooldown per account.
 *
 * Which thresholds apply — the design:
 *
 * 1. No (or not enough) history. Fixed ceilings: maxMsgsShort / maxMsgsLong /
 *    maxRcptsShort / maxRcptsLong (60 / 200 / 300 / 1000 by default),
 *    overridden per account by `ceilingsByAccount` (e.g. a newsletter account
 *    declared at 1000 msgs/h from day one).
 *
 * 2. Enough history: the account's own baseline takes precedence. Two
 *    Baselines (messages and recipients per long-window period, 1 h by
 *    default, half-life 7 days) learn the usual hourly count; "enough" means
 *    a decayed weight of at least baselineMinPeriods (24) periods — quiet
 *    hours count as zeros, so this is "watched for a day", not "sent mail in
 *    24 hours". The learned hourly threshold is
 *        T = max(minVolume, mean + k·max(σ, √mean), minRatio·mean)
 *    (k = 4, minVolume 30 msgs / 150 rcpts, minRatio 2). The √mean floor is
 *    Poisson noise (a perfectly steady sender learns σ≈0); minRatio leaves a
 *    steady sender room to grow (a 500/h newsletter is flagged above 1000/h,
 *    so at 5000/h, never at a normal 500/h).
 *    - Long window: T replaces the generic fixed ceiling (so a 5/h user is
 *      flagged at 31/h, well below the 200/h ceiling, and a 500/h
 *      newsletter is not flagged at all). An explicit per-account ceiling,
 *      when configured, stays a floor: the admin said that much is normal.
 *    - Short window: the hourly baseline says nothing about bursts within
 *      the hour, so the short ceiling (per-account or default) stays as a
 *      floor, raised for high-volume accounts to T × (short/long) ×
 *      burstFactor (3), i.e. half the learned hourly threshold in 10 min.
 *
 * 3. Learning is winsorised: once mature, a period never teaches the
 *    baseline more than its threshold, so an attack hour does not make
 *    the next attack look normal. Before maturity everything is learned
 *    (that is how the newsletter's 500/h becomes its normal).
 *
 * The "current-hour count" compared with T is the sliding long-window
 * count (≥ the clock-hour count the baseline sees), so an attack that
 * straddles an hour boundary is not split in two.
 *
 * Severity and score grow with observed/threshold (×1 → low/30, ×2 → 55,
 * ×4 → 80, ×8 → 100; critical from ×10). Re-alerts are limited by a
 * cooldown kept in a Recent structure; evidence is the last few messages'
 * sources, kept per account in a Samples structure. Messages are counted as
 * submissions (detectors/types.ts): when the queue manager takes each one,
 * so a flood whose mail the receivers defer is counted as it is sent, not
 * days later when Postfix gives up on it. Time comes only from them (the
 * queue manager's line). All state is in the ScopedStore, capped at maxKeys
 * accounts per structure.
 */
import { z } from 'zod';
import type { Evidence, Finding } from '../src/detect/finding.js';
import type { BaselineView } from '../src/detect/windows.js';
import { messageTs, passCooldown } from './account-util.js';
import { defineDetector } from './types.js';
import { fmtMs, gradeRatio, learnedThreshold, unlearn, round1 } from './volume-util.js';

const ceilingOverride = z
  .object({
    maxMsgsShort: z.number().int().positive().optional(),
    maxMsgsLong: z.number().int().positive().optional(),
    maxRcptsShort: z.number().int().positive().optional(),
    maxRcptsLong: z.number().int().positive().optional(),
  })
  .strict();

const config = z.object({
  /** Short sliding window (ms): catches a burst within minutes. */
  shortWindowMs: z.number().int().positive().default(10 * 60_000),
  /** Long sliding window (ms); also the baseline's period (the baseline learns counts per this long). */
  longWindowMs: z.number().int().positive().default(3600_000),
  /** Fixed ceilings per window, for accounts without enough history (see the top comment). */
  maxMsgsShort: z.number().int().positive().default(60),
  maxMsgsLong: z.number().int().positive().default(200),
  maxRcptsShort: z.number().int().positive().default(300),
  maxRcptsLong: z.number().int().positive().default(1000),
  /** Per-account ceilings (keys: SASL usernames, case-insensitive), e.g. `{ "news@example.com": { maxMsgsLong: 1000, maxMsgsShort: 300 } }`. Replace the defaults before maturity; floors after. */
  ceilingsByAccount: z.record(z.string(), ceilingOverride).default({}),
  /** Half-life of the learned baseline (ms): older hours weigh half as much after this long. */
  baselineHalfLifeMs: z.number().positive().default(7 * 86_400_000),
  /** Periods of history (decayed weight) before the baseline takes precedence over the fixed ceilings. */
  baselineMinPeriods: z.number().nonnegative().default(24),
  /** Standard deviations above the learned mean. */
  baselineK: z.number().positive().default(4),
  /** Learned thresholds are never below these (messages / recipients per long window). */
  baselineMinMsgs: z.number().nonnegative().default(30),
  baselineMinRcpts: z.number().nonnegative().default(150),
  /** Learned thresholds are never below minRatio × mean (room for a steady sender's organic growth). */
  baselineMinRatio: z.number().min(1).default(2),
  /** Mature accounts: short-window threshold ≥ learned hourly threshold × (short/long) × burstFactor. */
  burstFactor: z.number().positive().default(3),
  /** At most one finding per account per this long (ms). */
  cooldownMs: z.number().int().nonnegative().default(30 * 60_000),
  /** Recent messages kept per account as evidence (≤ 10). */
  evidenceSamples: z.number().int().min(1).max(10).default(8),
  /** Most accounts tracked per structure (least recently active evicted beyond it). */
  maxKeys: z.number().int().positive().default(100_000),
});

type Metric = 'msgsShort' | 'msgsLong' | 'rcptsShort' | 'rcptsLong';

// evidence sample: file, offset, ts, queueId, recipients, sender (offset and time in 32-bit cells, queue id in bytes, count in 32 bits: see Samples)
const SAMPLE_FIELDS = 'sutcis';
const PACK = 2 ** 21;

export const sendFloodDetector = defineDetector({
  id: 'send-flood',
  description: 'An account sends far more messages or recipients than its fixed ceiling or its own learned hourly baseline',
  config,
  events: [],
  messages: false,
  // Counted as the queue takes each message, not when it leaves: a throttled flood's mail stays queued for days.
  submissions: true,
  create(cfg, { store, emit, owner }) {
    const maxKeys = cfg.maxKeys;
    // One counter per window holds messages and recipients together, packed as
    // msgs + rcpts·PACK (messages < 2^21 per window, recipients < 2^32): half the
    // map operations per message of two separate counters.
    const short = store.counter('short', { windowMs: cfg.shortWindowMs, buckets: 10, maxKeys });
    const long = store.counter('long', { windowMs: cfg.longWindowMs, buckets: 12, maxKeys });
    const baseOpts = { periodMs: cfg.longWindowMs, halfLifeMs: cfg.baselineHalfLifeMs, maxKeys };
    const msgBase = store.baseline('msgs-per-period', baseOpts);
    const rcptBase = store.baseline('rcpts-per-period', baseOpts);
    const cooldown = store.recent<number>('cooldown', { ttlMs: cfg.cooldownMs, maxKeys });
    const ring = store.samples('samples', { ttlMs: cfg.longWindowMs, maxKeys, size: cfg.evidenceSamples, fields: SAMPLE_FIELDS });
    const row: (string | number)[] = ['', 0, 0, '', 0, '']; // reused: no allocation per message

    const byAccount = new Map(Object.entries(cfg.ceilingsByAccount).map(([k, v]) => [k.toLowerCase(), v]));
    const msgOpts = { k: cfg.baselineK, minVolume: cfg.baselineMinMsgs, minRatio: cfg.baselineMinRatio };
    const rcptOpts = { k: cfg.baselineK, minVolume: cfg.baselineMinRcpts, minRatio: cfg.baselineMinRatio };
    const share = (cfg.shortWindowMs / cfg.longWindowMs) * cfg.burstFactor;
    const shortLabel = fmtMs(cfg.shortWindowMs);
    const longLabel = fmtMs(cfg.longWindowMs);

    return {
      onSubmission(m) {
        const user = m.saslUser;
        if (user === undefined || user === '' || !owner.account(user)) return;
        const key = user.toLowerCase();
        const ts = messageTs(m);
        const nr = Math.max(m.recipients.length, m.nrcpt ?? 0);

        const sp = short.add(key, ts, 1 + nr * PACK);
        const lp = long.add(key, ts, 1 + nr * PACK);
        const rs = Math.floor(sp / PACK);
        const ms = sp - rs * PACK;
        const rl = Math.floor(lp / PACK);
        const ml = lp - rl * PACK;

        row[0] = m.src.file;
        row[1] = m.src.offset;
        row[2] = m.firstTs;
        row[3] = m.queueId;
        row[4] = nr;
        row[5] = m.sender ?? '';
        ring.add(key, ts, row);

        // thresholds (see the top comment). The views' mean/std/weight cover
        // completed periods only, so reading them after counting this message
        // is the same as before; `current` is then corrected if over (winsorising).
        const acct = byAccount.size === 0 ? undefined : byAccount.get(key);
        const mb = msgBase.add(key, ts, 1);
        const rb = rcptBase.add(key, ts, nr);
        const mature = mb.weight >= cfg.baselineMinPeriods;
        let tMs: number, tMl: number, tRs: number, tRl: number;
        if (mature) {
          tMl = Math.max(learnedThreshold(mb, msgOpts), acct?.maxMsgsLong ?? 0);
          tRl = Math.max(learnedThreshold(rb, rcptOpts), acct?.maxRcptsLong ?? 0);
          tMs = Math.max(acct?.maxMsgsShort ?? cfg.maxMsgsShort, tMl * share);
          tRs = Math.max(acct?.maxRcptsShort ?? cfg.maxRcptsShort, tRl * share);
          const xm = unlearn(1, mb, tMl);
          if (xm > 0) msgBase.add(key, ts, -xm);
          const xr = unlearn(nr, rb, tRl);
          if (xr > 0) rcptBase.add(key, ts, -xr);
        } else {
          tMs = acct?.maxMsgsShort ?? cfg.maxMsgsShort;
          tMl = acct?.maxMsgsLong ?? cfg.maxMsgsLong;
          tRs = acct?.maxRcptsShort ?? cfg.maxRcptsShort;
          tRl = acct?.maxRcptsLong ?? cfg.maxRcptsLong;
        }

        // the worst excess
        let worst: Metric = 'msgsShort';
        let ratio = ms / tMs;
        if (ml / tMl > ratio) {
          ratio = ml / tMl;
          worst = 'msgsLong';
        }
        if (rs / tRs > ratio) {
          ratio = rs / tRs;
          worst = 'rcptsShort';
        }
        if (rl / tRl > ratio) {
          ratio = rl / tRl;
          worst = 'rcptsLong';
        }
        if (ratio <= 1) return;
        // Once per cooldown, unless the severity climbs: a growing flood is reported as it grows.
        if (!passCooldown(cooldown, key, ts, gradeRatio(ratio).severity)) return;

        const counts = { msgsShort: ms, msgsLong: ml, rcptsShort: rs, rcptsLong: rl };
        const thresholds = { msgsShort: Math.round(tMs), msgsLong: Math.round(tMl), rcptsShort: Math.round(tRs), rcptsLong: Math.round(tRl) };
        emit(finding(key, ts, worst, ratio, counts, thresholds, mature, mb, rb));
      },
    };

    function finding(
      key: string,
      ts: number,
      worst: Metric,
      ratio: number,
      counts: Record<Metric, number>,
      thresholds: Record<Metric, number>,
      mature: boolean,
      mb: BaselineView | undefined,
      rb: BaselineView | undefined,
    ): Finding {
      const { severity, score } = gradeRatio(ratio);
      const what = worst.startsWith('msgs') ? 'messages' : 'recipients';
      const span = worst.endsWith('Short') ? shortLabel : longLabel;
      const n = counts[worst];
      const t = thresholds[worst];
      let why: string;
      if (mature && mb !== undefined && rb !== undefined) {
        const b = worst.startsWith('msgs') ? mb : rb;
        why = `above its learned threshold of ${t} (usually ${round1(b.mean)} ± ${round1(b.std)} ${what} per ${longLabel}, ${Math.round(b.weight)} periods of history)`;
      } else {
        why = `above the fixed ceiling of ${t} (${Math.round(mb?.weight ?? 0)} of ${cfg.baselineMinPeriods} periods of history needed for a baseline)`;
      }
      const summary = `${key} submitted ${n} ${what} in the last ${span}, ${why}.`;

      const evidence: Evidence[] = [];
      for (const r of ring.get(key, ts) ?? []) {
        const sender = r[5] as string;
        evidence.push({
          file: r[0] as string,
          offset: r[1] as number,
          ts: r[2] as number,
          note: `queue ${String(r[3])}: ${String(r[4])} recipient(s)${sender ? `, from <${sender}>` : ''}`,
        });
      }
      return {
        type: 'finding',
        detector: 'send-flood',
        entity: { kind: 'account', id: key },
        severity,
        score,
        ts,
        signals: ['volume'],
        summary,
        window: {
          mode: mature ? 'baseline' : 'fixed',
          trigger: worst,
          ratio: Math.round(ratio * 100) / 100,
          shortWindowMs: cfg.shortWindowMs,
          longWindowMs: cfg.longWindowMs,
          ...counts,
          thresholds,
          baseline:
            mb !== undefined && rb !== undefined
              ? { msgsMean: round1(mb.mean), msgsStd: round1(mb.std), rcptsMean: round1(rb.mean), rcptsStd: round1(rb.std), periods: round1(mb.weight), mature }
              : null,
        },
        evidence: evidence.slice(-10),
      };
    }
  },
});
