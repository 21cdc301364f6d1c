/**
 * sender-mismatch: an authenticated account sends with envelope senders it
 * does not own. This is the signature of a stolen password used for spam:
 * the spammer logs in as a real user (SMTP AUTH) and then writes whatever
 * `MAIL FROM` it likes (`random@yahoo.com.tw`, ...).
 *
 * Reads submissions (detectors/types.ts): a correlated message as the queue
 * manager takes it (the SASL user is on the smtpd line, the sender on the
 * qmgr line), judged at that line's time, not when its delivery ends,
 * which for mail the receivers defer can be days later. A sender is the
 * account's own when the site knowledge says so (`site.senderAllowed`: same
 * address, `user` login at a local domain, configured aliases / `@domain`
 * aliases, allowed sender domains).
 *
 * Per account and window it counts forged messages and the distinct forged
 * sender domains, and reports when either crosses its threshold:
 * - high: the default case (forged senders at foreign domains);
 * - critical: many forged messages or many forged domains at foreign domains;
 * - medium: every forged sender is at one of our own domains (often delegated
 *   "send as" rights that the site has not listed as aliases).
 * One report per account per cooldown, plus one escalation to a higher severity.
 */
import { z } from 'zod';
import type { Message } from '../src/correlator/message.js';
import type { Evidence, Severity } from '../src/detect/finding.js';
import { domainOf } from '../src/detect/site.js';
import { addDistinct, clampScore, evidence, fmtDuration, messageTs, normAccount, passCooldown, pushSample } from './account-util.js';
import { defineDetector } from './types.js';

const config = z.object({
  /** Sliding window the counts are taken over. */
  windowMs: z.number().int().positive().default(3_600_000),
  /** Report when an account sent at least this many forged messages in the window... */
  minMessages: z.number().int().positive().default(3),
  /** ...or used at least this many distinct forged sender domains. */
  minDomains: z.number().int().positive().default(2),
  /** Critical when forged messages with foreign-domain senders reach this many... */
  criticalMessages: z.number().int().positive().default(10),
  /** ...or the distinct foreign forged domains reach this many. */
  criticalDomains: z.number().int().positive().default(3),
  /** After a report, the same account is reported again only after this long (or when the severity rises). */
  cooldownMs: z.number().int().positive().default(3_600_000),
  /** Most accounts tracked at once (least recently active are evicted). */
  maxKeys: z.number().int().positive().default(100_000),
});

interface Samples {
  /** Distinct forged senders (first few). */
  senders: string[];
  ips: string[];
  ev: Evidence[];
}

const MAX_SENDERS = 5;
const MAX_IPS = 5;
const MAX_EVIDENCE = 8;
/** passCooldown's rank of 'critical'. */
const CRITICAL = 4;

export const senderMismatchDetector = defineDetector({
  id: 'sender-mismatch',
  description: 'An authenticated account sends with envelope senders it does not own (forged MAIL FROM after a stolen password).',
  config,
  events: [],
  messages: false,
  // Judged as the queue takes each message: the forged sender is known then, and a throttled flood's mail stays queued for days.
  submissions: true,
  create(cfg, { store, site, emit, owner }) {
    const forged = store.counter('forged', { windowMs: cfg.windowMs, maxKeys: cfg.maxKeys });
    const foreign = store.counter('foreign', { windowMs: cfg.windowMs, maxKeys: cfg.maxKeys });
    const domains = store.distinct('domains', { windowMs: cfg.windowMs, maxKeys: cfg.maxKeys, maxPerKey: 64 });
    const samples = store.recent<Samples>('samples', { ttlMs: cfg.windowMs, maxKeys: cfg.maxKeys });
    const cool = store.recent<number>('cooldown', { ttlMs: cfg.cooldownMs, maxKeys: cfg.maxKeys });

    function onSubmission(m: Message): void {
      const account = normAccount(m.saslUser);
      const sender = m.sender;
      if (account === undefined || sender === undefined || sender === '') return;
      if (!owner.account(account) || site.senderAllowed(account, sender)) return;

      const ts = messageTs(m);
      const s = sender.toLowerCase();
      const dom = domainOf(s) || s;
      const isForeign = !site.isLocalDomain(dom);
      const n = forged.add(account, ts);
      const nForeign = isForeign ? foreign.add(account, ts) : foreign.get(account, ts);
      const d = domains.add(account, dom, ts);

      let smp = samples.get(account, ts);
      if (smp === undefined) smp = { senders: [], ips: [], ev: [] };
      addDistinct(smp.senders, s, MAX_SENDERS);
      if (m.clientIp !== undefined) addDistinct(smp.ips, m.clientIp, MAX_IPS);
      pushSample(smp.ev, evidence(m.src, ts, `${account} sent as <${s}>${m.clientIp ? ` from ${m.clientIp}` : ''} (queue id ${m.queueId})`), MAX_EVIDENCE);
      samples.set(account, ts, smp);

      if (n < cfg.minMessages && d.count < cfg.minDomains) return;
      if (cool.get(account, ts) === CRITICAL) return; // already reported at the top severity: skip the slow path

      // The slow path: only once an account is over a threshold.
      const allDomains = domains.values(account, ts);
      let foreignDomains = 0;
      for (const x of allDomains) if (!site.isLocalDomain(x)) foreignDomains++;
      let severity: Severity;
      let score: number;
      if (nForeign === 0) {
        severity = 'medium';
        score = 40 + Math.min(15, n);
      } else if (nForeign >= cfg.criticalMessages || foreignDomains >= cfg.criticalDomains) {
        severity = 'critical';
        score = 85 + Math.min(15, Math.floor(nForeign / cfg.criticalMessages) * 3 + foreignDomains);
      } else {
        severity = 'high';
        score = 65 + Math.min(15, nForeign * 2 + foreignDomains * 3);
      }
      if (!passCooldown(cool, account, ts, severity)) return;

      const shown = smp.senders.join(', ');
      const via = smp.ips.length > 0 ? ` via ${smp.ips.join(', ')}` : '';
      const what = nForeign === 0 ? 'senders at our own domains it does not own' : 'envelope senders it does not own';
      emit({
        type: 'finding',
        detector: 'sender-mismatch',
        entity: { kind: 'account', id: account },
        severity,
        score: clampScore(score),
        ts,
        signals: ['forged-sender'],
        summary:
          `${account} sent ${n} message${n === 1 ? '' : 's'} in ${fmtDuration(cfg.windowMs)} with ${what}, ` +
          `${d.count}${d.capped ? '+' : ''} distinct domain${d.count === 1 ? '' : 's'} (e.g. ${shown})${via}`,
        window: {
          windowMs: cfg.windowMs,
          messages: n,
          foreignMessages: nForeign,
          domains: d.count,
          foreignDomains,
          domainsCapped: d.capped,
          minMessages: cfg.minMessages,
          minDomains: cfg.minDomains,
          criticalMessages: cfg.criticalMessages,
          criticalDomains: cfg.criticalDomains,
          sampleSenders: smp.senders.slice(),
          sampleDomains: allDomains.slice(-MAX_SENDERS),
          clientIps: smp.ips.slice(),
        },
        evidence: smp.ev.slice(0, 10),
        account,
        ...(m.clientIp !== undefined ? { ip: m.clientIp } : {}),
      });
    }

    return { onSubmission };
  },
});
