/**
 * What the site looks like, from config plus what the logs themselves show,
 * so zero config already works on a real server: SASL users' domains and
 * locally delivered recipients' domains are local domains; content-filter
 * hops and loopback are the server itself. Config refines (trusted networks,
 * mail hosts, outbound IPs, aliases). Everything learnt is bounded and
 * snapshot-able with the detectors' state.
 */
import ipaddr from 'ipaddr.js';
import type { Event } from '../core/events.js';
import { isLoopback } from '../correlator/correlator.js';
import type { Message } from '../correlator/message.js';

export interface SiteConfig {
  /** Domains this server hosts. Learnt from the logs when empty. */
  localDomains: string[];
  /** Postfix mynetworks: clients allowed to relay without SASL. */
  trustedNetworks: string[];
  /** Our own servers (mailbox/webmail hosts, other MTAs) that legitimately relay through this one. */
  mailHosts: string[];
  /** Public IPs this server sends from (for outbound SPF). */
  outboundIps: string[];
  /** Extra sender addresses an account may use: account → addresses (or `@domain`). */
  aliases: Record<string, string[]>;
  /** Domains any account may use as envelope sender (beyond the local ones). */
  allowedSenderDomains: string[];
}

export const defaultSiteConfig: SiteConfig = {
  localDomains: [],
  trustedNetworks: ['127.0.0.0/8', '::1/128'],
  mailHosts: [],
  outboundIps: [],
  aliases: {},
  allowedSenderDomains: [],
};

type Cidr = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** Parse CIDRs or bare IPs; throws with the offending entry named. */
export function parseCidrs(list: readonly string[], what: string): Cidr[] {
  return list.map((s) => {
    try {
      return s.includes('/') ? ipaddr.parseCIDR(s) : ([ipaddr.parse(s), ipaddr.parse(s).kind() === 'ipv4' ? 32 : 128] as Cidr);
    } catch {
      throw new Error(`${what}: '${s}' is not an IP address or CIDR (e.g. 192.0.2.0/24)`);
    }
  });
}

function parseIp(ip: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  try {
    const a = ipaddr.parse(ip);
    return a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress() ? (a as ipaddr.IPv6).toIPv4Address() : a;
  } catch {
    return undefined;
  }
}

function inCidrs(ip: string, cidrs: readonly Cidr[]): boolean {
  if (cidrs.length === 0) return false;
  const a = parseIp(ip);
  if (!a) return false;
  for (const [net, bits] of cidrs) {
    if (net.kind() === a.kind() && a.match(net, bits)) return true;
  }
  return false;
}

/** The /24 (IPv4) or /48 (IPv6) a client address belongs to: "the same network". */
export function networkOf(ip: string): string {
  // Most logins come from a plain dotted quad: its /24 is its first three
  // octets, without building an ipaddr object for every login.
  const lastDot = canonicalIpv4LastDot(ip);
  if (lastDot > 0) return ip.slice(0, lastDot) + '.0/24';
  const a = parseIp(ip);
  if (!a) return ip;
  if (a.kind() === 'ipv4') {
    const o = (a as ipaddr.IPv4).octets;
    return `${o[0]}.${o[1]}.${o[2]}.0/24`;
  }
  const p = (a as ipaddr.IPv6).parts;
  return `${(p[0] ?? 0).toString(16)}:${(p[1] ?? 0).toString(16)}:${(p[2] ?? 0).toString(16)}::/48`;
}

/**
 * Index of the last dot when `ip` is an IPv4 address in canonical form (four
 * decimal octets 0-255, no leading zeros, nothing else), else -1. Forms that
 * ipaddr.js reads differently (octal `010`, hex, fewer parts) take its path.
 */
function canonicalIpv4LastDot(ip: string): number {
  const n = ip.length;
  if (n < 7 || n > 15) return -1;
  let parts = 0;
  let digits = 0;
  let value = 0;
  let lastDot = -1;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? ip.charCodeAt(i) : 46; // a dot after the end closes the last octet
    if (c === 46) {
      if (digits === 0 || value > 255) return -1;
      if (++parts > 4) return -1;
      if (i < n) lastDot = i;
      digits = 0;
      value = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits === 1 && value === 0) return -1; // leading zero
      value = value * 10 + (c - 48);
      digits++;
    } else {
      return -1;
    }
  }
  return parts === 4 ? lastDot : -1;
}

export function domainOf(addr: string): string {
  // A loop from the end, not lastIndexOf: V8 runs lastIndexOf out of line,
  // and this runs for every recipient of every message, in several detectors.
  let at = addr.length - 1;
  while (at >= 0 && addr.charCodeAt(at) !== 64 /* @ */) at--;
  return at < 0 ? '' : addr.slice(at + 1).toLowerCase();
}

const localAgents = new Set(['lmtp', 'local', 'virtual']);

/**
 * The events SiteKnowledge.learnEvent may learn from (whatever it knows
 * already). The distributed parse stage routes an event no detector reads
 * only when this holds, so learnEvent begins with it: the two cannot drift.
 */
export function siteLearnsFrom(e: Event): boolean {
  switch (e.kind) {
    case 'smtp.tls':
      return e.direction === 'in' && e.ip !== undefined;
    case 'smtp.client':
      return e.account !== undefined;
    case 'auth':
      return e.outcome === 'success' && e.account !== undefined;
    case 'delivery':
      return e.status === 'sent' && localAgents.has(e.agent);
    default:
      return false;
  }
}

const MAX_LEARNT = 10_000;
const MAX_TLS_HOSTS = 10_000;

export class SiteKnowledge {
  readonly config: SiteConfig;
  private readonly trusted: Cidr[];
  private readonly hosts: Cidr[];
  private readonly outbound: Cidr[];
  private readonly configuredDomains: Set<string>;
  private readonly allowedDomains: Set<string>;
  private readonly aliasMap: Map<string, Set<string>>;
  /** Domains learnt from the logs. */
  private learnt = new Set<string>();
  /**
   * Hosts that log inbound TLS handshakes (smtpd_tls_loglevel >= 1) → time of
   * the last one: only on those does an SMTP AUTH without a logged handshake
   * mean cleartext. A fact about the host, not about any one client, so it
   * is site knowledge (every partition of distributed mode needs it).
   */
  private tlsHosts = new Map<string, number>();
  /** The host of the last TLS handshake learnt: the last in tlsHosts' order when it is still there. */
  private lastTlsHost: string | undefined;

  constructor(config: Partial<SiteConfig> = {}) {
    this.config = { ...defaultSiteConfig, ...config };
    this.trusted = parseCidrs(this.config.trustedNetworks, 'site.trustedNetworks');
    this.hosts = parseCidrs(this.config.mailHosts, 'site.mailHosts');
    this.outbound = parseCidrs(this.config.outboundIps, 'site.outboundIps');
    this.configuredDomains = new Set(this.config.localDomains.map((d) => d.toLowerCase()));
    this.allowedDomains = new Set(this.config.allowedSenderDomains.map((d) => d.toLowerCase()));
    this.aliasMap = new Map(Object.entries(this.config.aliases).map(([k, v]) => [k.toLowerCase(), new Set(v.map((x) => x.toLowerCase()))]));
  }

  isLocalDomain(domain: string): boolean {
    const d = domain.toLowerCase();
    return this.configuredDomains.has(d) || (this.configuredDomains.size === 0 && this.learnt.has(d));
  }

  inTrustedNetworks(ip: string): boolean {
    return inCidrs(ip, this.trusted);
  }

  isMailHost(ip: string): boolean {
    return isLoopback(ip) || inCidrs(ip, this.hosts);
  }

  isOutboundIp(ip: string): boolean {
    return inCidrs(ip, this.outbound);
  }

  /** May `account` use `sender` as envelope sender? Its own address, an alias, a local or allowed domain's address it owns. */
  senderAllowed(account: string, sender: string): boolean {
    if (sender === '') return true; // null sender (bounces, DSNs)
    const a = account.toLowerCase();
    const s = sender.toLowerCase();
    if (s === a) return true;
    // `user` logins (no domain) own user@<any local domain>
    const local = a.includes('@') ? undefined : a;
    const sd = domainOf(s);
    if (local !== undefined && s.slice(0, s.lastIndexOf('@')) === local && this.isLocalDomain(sd)) return true;
    const aliases = this.aliasMap.get(a);
    if (aliases && (aliases.has(s) || aliases.has('@' + sd))) return true;
    if (this.allowedDomains.has(sd)) return true;
    return false;
  }

  /** Whether `host` logged an inbound TLS handshake at most `ttlMs` before `ts`. */
  logsTlsHandshakes(host: string, ts: number, ttlMs: number): boolean {
    const t = this.tlsHosts.get(host);
    if (t === undefined) return false;
    if (ts - t > ttlMs) {
      this.tlsHosts.delete(host);
      return false;
    }
    return true;
  }

  /** Learn local domains, and which hosts log TLS handshakes, from what the server does. */
  learnEvent(e: Event): void {
    if (!siteLearnsFrom(e)) return;
    if (e.kind === 'smtp.tls') {
      this.sawTlsHandshake(e.host, e.ts);
      return;
    }
    if (this.configuredDomains.size > 0 || this.learnt.size >= MAX_LEARNT) return;
    // delivery: the locally delivered recipient's domain; smtp.client and auth: the account's
    const d = e.kind === 'delivery' ? domainOf(e.to) : e.kind === 'smtp.client' || e.kind === 'auth' ? domainOf(e.account!) : undefined;
    if (d) this.learnt.add(d);
    // ...and the domain of the address it was sent to, when an alias rewrote it (`orig_to`): a domain
    // alias, or a forwarding alias. The server took mail for it and delivered it here, so it is ours.
    if (e.kind === 'delivery' && e.origTo !== undefined && this.learnt.size < MAX_LEARNT) {
      const o = domainOf(e.origTo);
      if (o) this.learnt.add(o);
    }
  }

  private sawTlsHandshake(host: string, ts: number): void {
    const m = this.tlsHosts;
    // Already the most recently seen (one MTA logs most handshakes): only its time changes. Forgotten
    // since (logsTlsHandshakes drops an expired host), set() appends it, the newest, to a map one short of full.
    if (host === this.lastTlsHost) {
      m.set(host, ts);
      return;
    }
    this.lastTlsHost = host;
    // most recently seen last, so the oldest host goes first when full
    if (!m.delete(host) && m.size >= MAX_TLS_HOSTS) {
      const oldest = m.keys().next().value;
      if (oldest !== undefined) m.delete(oldest);
    }
    m.set(host, ts);
  }

  learnMessage(_m: Message): void {
    // messages carry nothing the events did not already teach
  }

  learntDomains(): string[] {
    return [...this.learnt];
  }

  snapshot(): unknown {
    return { learnt: [...this.learnt], tlsHosts: [...this.tlsHosts] };
  }

  restore(s: unknown): void {
    const d = s as { learnt?: string[]; tlsHosts?: [string, number][] };
    this.learnt = new Set(d.learnt ?? []);
    this.tlsHosts = new Map(d.tlsHosts ?? []);
    this.lastTlsHost = undefined;
  }
}
