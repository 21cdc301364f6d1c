/**
 * Test helpers for active DNS: a tiny authoritative DNS server on loopback
 * serving a declarative zone (real UDP packets, encoded with dns-packet, so
 * the production resolver path runs unchanged), and a guard that makes any
 * lookup against a non-loopback server fail the test.
 */
import dgram from 'node:dgram';
import dns from 'node:dns';
import { syncBuiltinESMExports } from 'node:module';
import dnsPacket from 'dns-packet';

export interface ZoneEntry {
  A?: string[];
  AAAA?: string[];
  /** Each record: one string (split into 255-byte chunks) or its chunks. */
  TXT?: (string | string[])[];
  MX?: { exchange: string; priority: number }[];
  PTR?: string[];
  /** Seconds. Default 300. */
  ttl?: number;
  /** Never answer queries for this name (a dead authoritative server). */
  drop?: boolean;
}

/** name → records; names are matched case-insensitively, without the trailing dot. Unknown names are NXDOMAIN. */
export type Zone = Record<string, ZoneEntry>;

export interface DnsServerOptions {
  /** Never answer anything. */
  silent?: boolean;
}

export interface TestDnsServer {
  /** `127.0.0.1:port`, for DnsLookupOptions.servers. */
  readonly address: string;
  readonly port: number;
  /** Queries received (answered or not). */
  readonly queries: { name: string; type: string }[];
  count(name?: string, type?: string): number;
  /** Replace or add names while running. */
  zone: Zone;
  close(): Promise<void>;
}

const AA = dnsPacket.AUTHORITATIVE_ANSWER;
const NXDOMAIN = 3;

function chunks(s: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < s.length; i += 255) out.push(s.slice(i, i + 255));
  return out.length > 0 ? out : [''];
}

function answersFor(name: string, type: string, e: ZoneEntry): dnsPacket.Answer[] {
  const ttl = e.ttl ?? 300;
  switch (type) {
    case 'A':
      return (e.A ?? []).map((data) => ({ type: 'A', name, ttl, data }));
    case 'AAAA':
      return (e.AAAA ?? []).map((data) => ({ type: 'AAAA', name, ttl, data }));
    case 'TXT':
      return (e.TXT ?? []).map((t) => ({ type: 'TXT', name, ttl, data: typeof t === 'string' ? chunks(t) : t }));
    case 'MX':
      return (e.MX ?? []).map((m) => ({ type: 'MX', name, ttl, data: { exchange: m.exchange, preference: m.priority } }));
    case 'PTR':
      return (e.PTR ?? []).map((data) => ({ type: 'PTR', name, ttl, data }));
    default:
      return [];
  }
}

export async function startDnsServer(zone: Zone, opts: DnsServerOptions = {}): Promise<TestDnsServer> {
  const sock = dgram.createSocket('udp4');
  const queries: { name: string; type: string }[] = [];
  const server = {
    zone,
    queries,
    address: '',
    port: 0,
    count(name?: string, type?: string) {
      return queries.filter((q) => (name === undefined || q.name === name.toLowerCase()) && (type === undefined || q.type === type)).length;
    },
    close: () =>
      new Promise<void>((resolve) => {
        testServers.delete(server.address);
        sock.close(() => resolve());
      }),
  };
  sock.on('message', (buf, rinfo) => {
    let req: dnsPacket.Packet;
    try {
      req = dnsPacket.decode(buf);
    } catch {
      return;
    }
    const q = req.questions?.[0];
    if (!q) return;
    const name = q.name.toLowerCase().replace(/\.$/, '');
    queries.push({ name, type: q.type });
    const entry = server.zone[name];
    if (opts.silent || entry?.drop) return;
    const res = dnsPacket.encode({
      id: req.id ?? 0,
      type: 'response',
      flags: AA | (entry ? 0 : NXDOMAIN),
      questions: [q],
      answers: entry ? answersFor(q.name, q.type, entry) : [],
    });
    sock.send(res, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(0, '127.0.0.1', () => resolve());
  });
  const port = sock.address().port;
  server.port = port;
  server.address = `127.0.0.1:${port}`;
  testServers.add(server.address);
  return server;
}

// --- deny real DNS ------------------------------------------------------------------

const moduleFns = [
  'resolve',
  'resolve4',
  'resolve6',
  'resolveAny',
  'resolveCaa',
  'resolveCname',
  'resolveMx',
  'resolveNaptr',
  'resolveNs',
  'resolvePtr',
  'resolveSoa',
  'resolveSrv',
  'resolveTxt',
  'reverse',
] as const;

/** Addresses of the test servers running now: the only servers a Resolver may ask while the guard is on. */
const testServers = new Set<string>();

export class RealDnsDenied extends Error {
  constructor(what: string) {
    super(`real DNS lookup denied in tests: ${what} (point the resolver at startDnsServer())`);
    this.name = 'RealDnsDenied';
  }
}

/**
 * Make every DNS path that could reach a real server throw: the module-level
 * functions of node:dns and node:dns/promises (the system resolver), `lookup`
 * of anything but localhost/IP literals, and Resolver instances whose servers
 * are not all test servers started here (a loopback stub resolver such as
 * 127.0.0.53 would still reach the internet). Returns the undo function.
 */
export function denyRealDns(): () => void {
  type Fn = (...args: unknown[]) => unknown;
  const undo: (() => void)[] = [];
  const patch = (obj: Record<string, unknown>, key: string, make: (orig: Fn) => Fn) => {
    const orig = obj[key];
    if (typeof orig !== 'function') return;
    obj[key] = make(orig as Fn);
    undo.push(() => {
      obj[key] = orig;
    });
  };
  const modules = [dns as unknown as Record<string, unknown>, dns.promises as unknown as Record<string, unknown>];
  for (const mod of modules) {
    for (const fn of moduleFns) {
      patch(mod, fn, () => (name: unknown) => {
        throw new RealDnsDenied(`dns.${fn}(${String(name)}) with the system resolver`);
      });
    }
    patch(mod, 'lookup', (orig) =>
      function (this: unknown, host: unknown, ...rest: unknown[]) {
        if (host === 'localhost' || (typeof host === 'string' && /^[\d.]+$|:/.test(host))) return orig.call(this, host, ...rest);
        throw new RealDnsDenied(`dns.lookup(${String(host)})`);
      },
    );
  }
  for (const R of [dns.Resolver, dns.promises.Resolver]) {
    const proto = R.prototype as unknown as Record<string, unknown>;
    for (const fn of moduleFns) {
      patch(proto, fn, (orig) =>
        function (this: { getServers(): string[] }, ...args: unknown[]) {
          const servers = this.getServers();
          if (servers.length === 0 || !servers.every((x) => testServers.has(x))) throw new RealDnsDenied(`Resolver.${fn}(${String(args[0])}) via ${servers.join(', ')}`);
          return orig.apply(this, args);
        },
      );
    }
  }
  syncBuiltinESMExports();
  return () => {
    for (const u of undo.reverse()) u();
    syncBuiltinESMExports();
  };
}
