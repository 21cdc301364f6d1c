/**
 * spf: SPF in both directions.
 *
 * Inbound — `spf-inbound-fail` (ip, medium): the SPF policy daemon
 * (policyd-spf, python or perl) judged `fail`/`softfail`, or smtpd rejected
 * for SPF, for an envelope sender in one of OUR domains, from a client that
 * is not ours: someone is spoofing our domain at our own door (phishing our
 * users as "ceo@our.domain"). Needs the client IP (the perl daemon's result
 * line does not carry it; its smtpd reject does). Fails for FOREIGN domains
 * are internet background noise the daemon already handled: they are only
 * counted (`window.foreignFails` on our findings), never reported. Fails from
 * our own hosts (mail hosts, trusted networks, outbound IPs) mean our SPF
 * record is incomplete, not spoofing: not reported here either.
 *
 * Outbound — `spf-outbound-fail` (account, high for fail / medium for
 * softfail): a message our server relays to external recipients, sent by a
 * SASL account (or a trusted, non-mail-host client: then the entity is its
 * IP) with an envelope sender of a FOREIGN domain it has no right to use
 * (not local, not an alias, not in allowedSenderDomains), whose SPF does not
 * authorise any of our outbound IPs. That is the stolen-password spam
 * pattern (`random@yahoo.com.tw` sent through us): the receiving side will
 * reject or junk it, and our IP's reputation pays. SPF is evaluated by
 * mailauth's RFC 7208 implementation against the injected resolver (never
 * the system's), only when `site.outboundIps` names single addresses and
 * DNS is configured. The verdict per sender domain (for all outbound IPs)
 * is cached `cacheTtlMs`; `temperror` is not cached. Evaluation is async:
 * onMessage fires it and returns; findings follow when it completes, with the
 * message's ts. `drain()` waits for evaluations in flight.
 *
 * Distributed mode (src/detect/route.ts): inbound counts are the client
 * IP's; outbound evaluation runs in the delivery owning the account (or the
 * trusted IP), and its verdict comes back to that owner through a hand-off.
 * The verdict cache per domain, and window.foreignFails, are then per
 * partition.
 */
import { spf as spfVerify } from 'mailauth/lib/spf/index.js';
import { z } from 'zod';
import type { Message } from '../src/correlator/message.js';
import type { DnsLookup } from '../src/detect/dns.js';
import type { Evidence, Severity } from '../src/detect/finding.js';
import { accountRoute, ipRoute } from '../src/detect/route.js';
import { domainOf, type SiteKnowledge } from '../src/detect/site.js';
import { defineDetector } from './types.js';

const config = z.object({
  /** Window for counting SPF fails per IP (inbound) and per account (outbound) (ms). */
  windowMs: z.number().int().positive().default(60 * 60_000),
  /** Inbound fails for our domains from one IP within `windowMs` before a finding. */
  inboundThreshold: z.number().int().positive().default(1),
  /** Evaluate outbound SPF (needs site.outboundIps and a DNS resolver). */
  outbound: z.boolean().default(true),
  /** How long an outbound verdict per sender domain is reused (ms). */
  cacheTtlMs: z.number().int().positive().default(60 * 60_000),
  /** How long a domain counts as "being evaluated" before a new message may ask again (ms). */
  pendingTtlMs: z.number().int().positive().default(60_000),
  /** Most of site.outboundIps evaluated. */
  maxOutboundIps: z.number().int().positive().default(4),
  /** One finding per (signal, entity, domain) per cooldown (ms). */
  cooldownMs: z.number().int().positive().default(60 * 60_000),
  maxKeys: z.number().int().positive().default(50_000),
});

type SpfResult = 'pass' | 'fail' | 'softfail' | 'neutral' | 'none' | 'permerror' | 'temperror';

interface Verdict {
  /** `fail`/`softfail` when no outbound IP is authorised (fail if any IP fails hard); else the best result seen. */
  result: SpfResult;
  perIp: Record<string, SpfResult>;
  record?: string;
}

interface Waiter {
  entity: { kind: 'account' | 'ip'; id: string };
  ts: number;
  file: string;
  offset: number;
  sender: string;
  queueId: string;
  external: number;
}

/** An outbound verdict handed back to the delivery owning the waiting entity. */
interface VerdictFor {
  w: Waiter;
  domain: string;
  v: Verdict;
}

function isVerdictFor(d: unknown): d is VerdictFor {
  const x = d as Partial<VerdictFor> | null;
  const w = x?.w;
  return (
    typeof x?.domain === 'string' &&
    typeof x.v?.result === 'string' &&
    typeof x.v.perIp === 'object' &&
    typeof w?.entity === 'object' &&
    (w.entity.kind === 'account' || w.entity.kind === 'ip') &&
    typeof w.entity.id === 'string' &&
    typeof w.ts === 'number' &&
    typeof w.file === 'string' &&
    typeof w.offset === 'number' &&
    typeof w.sender === 'string' &&
    typeof w.queueId === 'string' &&
    typeof w.external === 'number'
  );
}

const TRIED = new Set(['sent', 'deferred', 'bounced', 'expired', 'softbounce', 'undeliverable', 'deliverable']);
const RANK: Record<Severity, number> = { info: 0, low: 1, medium: 2, high: 3, critical: 4 };

function externalCount(m: Message, site: SiteKnowledge): number {
  let n = 0;
  for (const r of m.recipients) {
    if (r.viaFilter || !TRIED.has(r.status)) continue;
    const d = domainOf(r.address);
    if (d !== '' && !site.isLocalDomain(d)) n++;
  }
  return n;
}

function dnsError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/** mailauth's `resolver(name, rrtype)` over the injected DnsLookup: node's shapes, ENODATA for empty answers (its void-lookup accounting). */
export function mailauthResolver(dns: DnsLookup): (name: string, rrtype: string) => Promise<string[][] | string[]> {
  return async (name, rrtype) => {
    let out: unknown[];
    if (dns.resolve && (rrtype === 'A' || rrtype === 'AAAA' || rrtype === 'TXT' || rrtype === 'MX' || rrtype === 'PTR')) out = await dns.resolve(name, rrtype);
    else if (rrtype === 'A') out = (await dns.a(name)).map((r) => r.address);
    else if (rrtype === 'TXT') out = (await dns.txt(name)).map((t) => [t]);
    else throw dnsError('ENOTIMP', `${rrtype} lookups are not available from this resolver`);
    if (out.length === 0) throw dnsError('ENODATA', `${rrtype} ${name}: no records`);
    return out as string[][] | string[];
  };
}

/** The single addresses of site.outboundIps (ranges cannot be evaluated and are left out). */
function outboundAddresses(site: SiteKnowledge, max: number): string[] {
  const out: string[] = [];
  for (const s of site.config.outboundIps) {
    const slash = s.indexOf('/');
    const bits = slash < 0 ? undefined : s.slice(slash + 1);
    if (slash < 0 || bits === '32' || bits === '128') out.push(slash < 0 ? s : s.slice(0, slash));
    if (out.length >= max) break;
  }
  return out;
}

export const spfDetector = defineDetector({
  id: 'spf',
  description: 'SPF: our domains spoofed inbound, and accounts sending as foreign domains whose SPF does not authorise our outbound IPs.',
  config,
  events: ['spf', 'smtp.reject'],
  reads: (e) =>
    (e.kind === 'spf' && (e.result === 'fail' || e.result === 'softfail') && e.sender !== undefined) ||
    (e.kind === 'smtp.reject' && e.category === 'spf' && e.from !== undefined),
  messages: true,
  create(cfg, { store, site, emit, dns, owner, handOff }) {
    const inboundFails = store.counter('inbound-fails', { windowMs: cfg.windowMs, maxKeys: cfg.maxKeys });
    const inboundDomains = store.distinct('inbound-domains', { windowMs: cfg.windowMs, maxPerKey: 20, maxKeys: cfg.maxKeys });
    const foreignFails = store.counter('inbound-foreign', { windowMs: cfg.windowMs, maxKeys: 1 });
    const outboundFails = store.counter('outbound-fails', { windowMs: cfg.windowMs, maxKeys: cfg.maxKeys });
    const outboundDomains = store.distinct('outbound-domains', { windowMs: cfg.windowMs, maxPerKey: 50, maxKeys: cfg.maxKeys });
    const verdicts = store.recent<Verdict>('verdicts', { ttlMs: cfg.cacheTtlMs, maxKeys: cfg.maxKeys });
    const pending = store.recent<Waiter[]>('pending', { ttlMs: cfg.pendingTtlMs, maxKeys: cfg.maxKeys });
    const dnsErrors = store.counter('dns-errors', { windowMs: 3600_000, maxKeys: 4 });
    const alerted = store.recent<number>('alerted', { ttlMs: cfg.cooldownMs, maxKeys: cfg.maxKeys });
    const inflight = new Set<Promise<void>>();
    const allowedDomains = new Set(site.config.allowedSenderDomains.map((d) => d.toLowerCase()));
    const ourIps = cfg.outbound && dns !== undefined ? outboundAddresses(site, cfg.maxOutboundIps) : [];
    const resolver = dns !== undefined ? mailauthResolver(dns) : undefined;

    function due(key: string, severity: Severity, ts: number): boolean {
      const prev = alerted.get(key, ts);
      if (prev !== undefined && prev >= RANK[severity]) return false;
      alerted.set(key, ts, RANK[severity]);
      return true;
    }

    // --- inbound ----------------------------------------------------------------------

    function inbound(ip: string | undefined, sender: string, result: string, ts: number, src: { file: string; offset: number }, how: string): void {
      const domain = domainOf(sender);
      if (domain === '') return;
      if (!site.isLocalDomain(domain)) {
        // a site-wide count, no entity's: once per item
        if (owner.primary()) foreignFails.add('*', ts);
        return;
      }
      if (ip === undefined || site.isMailHost(ip) || site.inTrustedNetworks(ip) || site.isOutboundIp(ip) || !owner.ip(ip)) return;
      const n = inboundFails.add(ip, ts);
      const domains = inboundDomains.add(ip, domain, ts).count;
      if (n < cfg.inboundThreshold || !due(`spf-inbound-fail|${ip}`, 'medium', ts)) return;
      emit({
        type: 'finding',
        detector: 'spf',
        entity: { kind: 'ip', id: ip },
        ip,
        severity: 'medium',
        score: 40,
        ts,
        signals: ['spf-inbound-fail'],
        summary: `${ip} sent as <${sender}>, one of our domains, and SPF said ${result}: someone is spoofing ${domain}`,
        window: { windowMs: cfg.windowMs, count: n, threshold: cfg.inboundThreshold, domains, result, foreignFails: foreignFails.get('*', ts) },
        evidence: [{ file: src.file, offset: src.offset, ts, note: `${how}: SPF ${result} for <${sender}> from ${ip}` }],
      });
    }

    // --- outbound ---------------------------------------------------------------------

    function report(w: Waiter, domain: string, v: Verdict): void {
      if (v.result !== 'fail' && v.result !== 'softfail') return;
      const key = `${w.entity.kind}:${w.entity.id}`;
      const n = outboundFails.add(key, w.ts);
      const domains = outboundDomains.add(key, domain, w.ts).count;
      const severity: Severity = v.result === 'fail' ? 'high' : 'medium';
      if (!due(`spf-outbound-fail|${key}|${domain}`, severity, w.ts)) return;
      const evidence: Evidence[] = [{ file: w.file, offset: w.offset, ts: w.ts, note: `message ${w.queueId} from <${w.sender}> to ${w.external} external recipient(s)` }];
      const who = w.entity.kind === 'account' ? w.entity.id : `trusted client ${w.entity.id}`;
      emit({
        type: 'finding',
        detector: 'spf',
        entity: w.entity,
        ...(w.entity.kind === 'account' ? { account: w.entity.id } : { ip: w.entity.id }),
        severity,
        score: Math.min(100, (severity === 'high' ? 60 : 45) + 5 * (domains - 1)),
        ts: w.ts,
        signals: ['spf-outbound-fail'],
        summary: `${who} sent as <${w.sender}>, but ${domain}'s SPF does not allow our outbound IP(s) (${v.result}): a forged sender, the mark of a stolen password`,
        window: { windowMs: cfg.windowMs, domain, result: v.result, perIp: v.perIp, record: v.record, messages: n, forgedDomains: domains },
        evidence,
      });
    }

    async function evaluate(sender: string, ts: number): Promise<Verdict | undefined> {
      if (!resolver) return undefined;
      const perIp: Record<string, SpfResult> = {};
      let record: string | undefined;
      for (const ip of ourIps) {
        const r = await spfVerify({ sender, ip, mta: 'floodgate', resolver });
        const res = r.status.result as string;
        perIp[ip] = (['pass', 'fail', 'softfail', 'neutral', 'none', 'permerror', 'temperror'].includes(res) ? res : 'temperror') as SpfResult;
        record ??= r.rr;
      }
      const results = Object.values(perIp);
      if (results.includes('temperror')) {
        dnsErrors.add('temperror', ts);
        return undefined;
      }
      const allBad = results.length > 0 && results.every((r) => r === 'fail' || r === 'softfail');
      const result: SpfResult = allBad ? (results.includes('fail') ? 'fail' : 'softfail') : (results.find((r) => r === 'pass') ?? results[0] ?? 'none');
      return record !== undefined ? { result, perIp, record } : { result, perIp };
    }

    function outbound(m: Message): void {
      if (ourIps.length === 0 || m.origin !== 'smtp') return;
      const sender = m.sender;
      if (sender === undefined || sender === '') return;
      const domain = domainOf(sender);
      if (domain === '' || site.isLocalDomain(domain) || allowedDomains.has(domain)) return;
      let entity: Waiter['entity'];
      // the entity's delivery evaluates (its counts and cooldown live there)
      if (m.saslUser !== undefined) {
        if (!owner.account(m.saslUser) || site.senderAllowed(m.saslUser, sender)) return;
        entity = { kind: 'account', id: m.saslUser };
      } else {
        const ip = m.clientIp;
        if (ip === undefined || site.isMailHost(ip) || !site.inTrustedNetworks(ip) || !owner.ip(ip)) return; // mail hosts include loopback
        entity = { kind: 'ip', id: ip };
      }
      const external = externalCount(m, site);
      if (external === 0) return;
      const w: Waiter = { entity, ts: m.firstTs, file: m.src.file, offset: m.src.offset, sender, queueId: m.queueId, external };
      const cached = verdicts.get(domain, w.ts);
      if (cached !== undefined) {
        report(w, domain, cached);
        return;
      }
      const waiting = pending.get(domain, w.ts);
      if (waiting !== undefined) {
        if (waiting.length < 10 && !waiting.some((x) => x.entity.id === entity.id)) waiting.push(w);
        return;
      }
      const waiters: Waiter[] = [w];
      pending.set(domain, w.ts, waiters);
      const p = evaluate(sender, w.ts).then(
        (v) => {
          pending.delete(domain);
          if (v === undefined) return;
          verdicts.set(domain, w.ts, v);
          if (v.result !== 'fail' && v.result !== 'softfail') return;
          // Counts and cooldowns are the entity's: back through its delivery (standalone: at once).
          for (const x of waiters) handOff(x.entity.kind === 'account' ? accountRoute(x.entity.id) : ipRoute(x.entity.id), { w: x, domain, v } satisfies VerdictFor);
        },
        () => {
          pending.delete(domain);
          dnsErrors.add('error', w.ts);
        },
      );
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
    }

    return {
      onEvent(e) {
        if (e.kind === 'spf') {
          if ((e.result !== 'fail' && e.result !== 'softfail') || e.sender === undefined) return;
          if (e.identity !== undefined && e.identity !== 'mailfrom') return;
          inbound(e.ip, e.sender, e.result, e.ts, e.src, e.program);
        } else if (e.kind === 'smtp.reject') {
          if (e.category !== 'spf' || e.from === undefined) return;
          inbound(e.ip, e.from, 'fail', e.ts, e.src, `${e.program} reject`);
        }
      },
      onMessage(m) {
        outbound(m);
      },
      onHandOff(data) {
        if (!isVerdictFor(data)) return false;
        report(data.w, data.domain, data.v);
        return true;
      },
      async drain() {
        while (inflight.size > 0) await Promise.allSettled([...inflight]);
      },
    };
  },
});
