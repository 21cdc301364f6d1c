/**
 * trusted-relay: is the server relaying for people it should not?
 *
 * - `wide-trusted-network` (ip, high): a client inside `site.trustedNetworks`
 *   (Postfix mynetworks) that is neither loopback nor a declared mail host
 *   got mail relayed to external recipients without SASL. Either that
 *   network is wider than the servers that need it (a compromised PC in the
 *   office /24 relays freely), or the host is a legitimate relay to declare
 *   in `site.mailHosts`.
 *   A private-range client (RFC 1918, ULA, CGNAT) that is not declared
 *   anywhere counts here too: Postfix relayed for it, so its mynetworks
 *   includes it; floodgate's config just does not say so (zero config with
 *   a separate mailbox host), and "open relay, critical" would be wrong.
 * - `open-relay` (ip, critical): a public client that is not trusted, not a
 *   mail host and did not authenticate got mail relayed to external recipients.
 *   Inbound mail (internet → local recipients) is normal and never counted,
 *   nor is mail to an address the server itself rewrote to an external one
 *   (an alias or .forward: Postfix logs the address the client gave as
 *   `orig_to`). The client chose only the address it gave, and an open relay
 *   is a server that delivers where the client says; an alias is the
 *   server's own configuration. This holds whether or not floodgate knows the
 *   alias's domain: with zero config it learns the domains mail is delivered
 *   to locally, and an alias domain that only forwards never is one.
 *   Re-injected hops (amavis, DKIM signing: loopback clients) are not clients:
 *   the correlator attributes the message to its first hop.
 * - `relay-probing` (ip, low → medium at 5× the threshold): bursts of
 *   `Relay access denied` rejects from one IP: someone testing whether we
 *   are an open relay. The server said no, so this is context, not an alarm.
 *
 * "External" is decided on recipients the server really tried to deliver
 * (not merely handed to a content filter) whose domain is not local. With
 * no local domain known at all (none configured, none learnt yet) nothing
 * can be called external, and message checks wait.
 */
import ipaddr from 'ipaddr.js';
import { z } from 'zod';
import type { Message, Recipient } from '../src/correlator/message.js';
import type { Evidence, Finding, Severity, Signal } from '../src/detect/finding.js';
import { domainOf, type SiteKnowledge } from '../src/detect/site.js';
import { defineDetector } from './types.js';

const config = z.object({
  /** Window for relay-denied bursts and for counting relayed messages per IP (ms). */
  windowMs: z.number().int().positive().default(10 * 60_000),
  /** Relay-denied rejects from one IP within `windowMs` that make a probing finding. */
  probeThreshold: z.number().int().positive().default(10),
  /** One finding per (signal, IP) per cooldown (ms); a higher severity re-alerts at once. */
  cooldownMs: z.number().int().positive().default(60 * 60_000),
  /** Most IPs tracked per structure (least recently seen evicted). */
  maxKeys: z.number().int().positive().default(50_000),
});

const RANK: Record<Severity, number> = { info: 0, low: 1, medium: 2, high: 3, critical: 4 };
/** Delivery statuses that mean the server accepted the mail for that recipient and tried to deliver it. */
const TRIED = new Set(['sent', 'deferred', 'bounced', 'expired', 'softbounce', 'undeliverable', 'deliverable']);

/** Recipients the server relayed (or tried to) to a non-local domain, at the address the client gave (not through an alias of ours). */
function externalRecipients(m: Message, site: SiteKnowledge): Recipient[] {
  let out: Recipient[] | undefined;
  for (const r of m.recipients) {
    if (r.viaFilter || !TRIED.has(r.status)) continue;
    const d = domainOf(r.address);
    if (d === '' || site.isLocalDomain(d)) continue;
    if (rewrittenByServer(r)) continue; // an alias or .forward that points outside
    (out ??= []).push(r);
  }
  return out ?? [];
}

/**
 * The server's aliases chose this destination: the client gave an address
 * in another domain (`orig_to`) than the one delivered to. Only a domain
 * change counts, compared without case and a trailing dot (Postfix drops
 * both), so an address the client spelled differently is still the
 * client's choice; so is one routed by its own syntax (`user%domain@host`,
 * `host!user`), which Postfix may resolve to another domain itself.
 */
function rewrittenByServer(r: Recipient): boolean {
  const orig = r.origTo;
  if (orig === undefined || orig === '') return false;
  const at = orig.lastIndexOf('@');
  const local = at < 0 ? orig : orig.slice(0, at);
  if (local.includes('%') || local.includes('!')) return false;
  return bareDomain(domainOf(orig)) !== bareDomain(domainOf(r.address));
}

function bareDomain(d: string): string {
  return d.endsWith('.') ? d.slice(0, -1) : d;
}

const PRIVATE_RANGES = new Set(['private', 'uniqueLocal', 'linkLocal', 'carrierGradeNat']);

function isPrivate(ip: string): boolean {
  try {
    let a = ipaddr.parse(ip);
    if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()) a = (a as ipaddr.IPv6).toIPv4Address();
    return PRIVATE_RANGES.has(a.range());
  } catch {
    return false;
  }
}

function knowsLocalDomains(site: SiteKnowledge): boolean {
  return site.config.localDomains.length > 0 || site.learntDomains().length > 0;
}

export const trustedRelayDetector = defineDetector({
  id: 'trusted-relay',
  description: 'Relaying without authentication: trusted networks wider than the mail hosts, open relay, and relay probing.',
  config,
  events: ['smtp.reject'],
  reads: (e) => e.kind === 'smtp.reject' && e.category === 'relay-denied' && e.ip !== undefined,
  messages: true,
  create(cfg, { store, site, emit, owner }) {
    const probes = store.counter('relay-denied', { windowMs: cfg.windowMs, maxKeys: cfg.maxKeys });
    const probeTargets = store.distinct('relay-denied-targets', { windowMs: cfg.windowMs, maxPerKey: 100, maxKeys: cfg.maxKeys });
    const probeSamples = store.recent<Evidence[]>('relay-denied-samples', { ttlMs: cfg.windowMs, maxKeys: cfg.maxKeys });
    const relayed = store.counter('relayed', { windowMs: cfg.windowMs, maxKeys: cfg.maxKeys });
    const alerted = store.recent<number>('alerted', { ttlMs: cfg.cooldownMs, maxKeys: cfg.maxKeys });

    /** True when (signal, ip) has not been reported at this severity or above within the cooldown; records it. */
    function due(signal: Signal, ip: string, severity: Severity, ts: number): boolean {
      const key = `${signal}|${ip}`;
      const prev = alerted.get(key, ts);
      if (prev !== undefined && prev >= RANK[severity]) return false;
      alerted.set(key, ts, RANK[severity]);
      return true;
    }

    function onRelayMessage(m: Message, ip: string): void {
      const ext = externalRecipients(m, site);
      if (ext.length === 0 || !knowsLocalDomains(site)) return;
      // parsed only for mail that was relayed out: most unauthenticated mail is inbound
      const declared = site.inTrustedNetworks(ip);
      const trusted = declared || isPrivate(ip);
      const ts = m.firstTs;
      const signal: Signal = trusted ? 'wide-trusted-network' : 'open-relay';
      const count = relayed.add(`${signal}|${ip}`, ts);
      const severity: Severity = trusted ? 'high' : 'critical';
      if (!due(signal, ip, severity, ts)) return;
      const sender = m.sender ?? '';
      const senderDomain = domainOf(sender);
      const senderLocal = senderDomain !== '' && site.isLocalDomain(senderDomain);
      const sample = ext.slice(0, 5).map((r) => r.address);
      const summary = trusted
        ? `${ip} ${declared ? 'is inside the trusted networks and' : '(private, not declared in site.trustedNetworks)'} relayed mail from <${sender}> to ${ext.length} external recipient(s) without authenticating; ` +
          `narrow mynetworks to the servers that need it, or declare ${ip} in site.mailHosts if it is one`
        : `open relay: ${ip} (not trusted, not authenticated) got mail from <${sender}> relayed to ${ext.length} external recipient(s) (${sample.join(', ')})`;
      const f: Finding = {
        type: 'finding',
        detector: 'trusted-relay',
        entity: { kind: 'ip', id: ip },
        ip,
        severity,
        score: trusted ? 60 : 95,
        ts,
        signals: [signal],
        summary,
        window: {
          windowMs: cfg.windowMs,
          messages: count,
          queueId: m.queueId,
          host: m.host,
          service: m.service,
          declaredTrusted: declared,
          sender,
          senderLocal,
          externalRecipients: ext.length,
          recipients: m.recipients.length,
          sample,
        },
        evidence: [{ ...m.src, ts, note: `message ${m.queueId} from ${ip} relayed to ${sample[0] ?? 'an external recipient'} without SASL` }],
      };
      emit(f);
    }

    return {
      onMessage(m) {
        if (m.origin !== 'smtp' || m.saslUser !== undefined) return;
        const ip = m.clientIp;
        if (ip === undefined || site.isMailHost(ip) || !owner.ip(ip)) return; // loopback included
        onRelayMessage(m, ip);
      },

      onEvent(e) {
        if (e.kind !== 'smtp.reject' || e.category !== 'relay-denied' || e.ip === undefined || !owner.ip(e.ip)) return;
        const ip = e.ip;
        const n = probes.add(ip, e.ts);
        const target = e.to !== undefined ? domainOf(e.to) : '';
        const targets = target !== '' ? probeTargets.add(ip, target, e.ts).count : probeTargets.count(ip, e.ts);
        let samples = probeSamples.get(ip, e.ts);
        if (samples === undefined || samples.length < 10) {
          samples = samples === undefined ? [] : samples;
          samples.push({ ...e.src, ts: e.ts, note: `relay denied: <${e.from ?? ''}> → <${e.to ?? ''}>` });
        }
        probeSamples.set(ip, e.ts, samples);
        if (n < cfg.probeThreshold) return;
        const severity: Severity = n >= cfg.probeThreshold * 5 ? 'medium' : 'low';
        if (!due('relay-probing', ip, severity, e.ts)) return;
        emit({
          type: 'finding',
          detector: 'trusted-relay',
          entity: { kind: 'ip', id: ip },
          ip,
          severity,
          score: severity === 'medium' ? 35 : 20,
          ts: e.ts,
          signals: ['relay-probing'],
          summary: `${ip} was refused relaying ${n} times in ${Math.round(cfg.windowMs / 60_000)} min (${targets} target domain(s)): probing for an open relay`,
          window: { windowMs: cfg.windowMs, count: n, threshold: cfg.probeThreshold, targetDomains: targets, sampleTargets: probeTargets.values(ip, e.ts).slice(-5) },
          evidence: samples.slice(0, 10),
        });
      },
    };
  },
});
