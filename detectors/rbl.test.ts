import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDnsLookup } from '../src/detect/dns-lookup.js';
import { findingSchema, type Finding } from '../src/detect/finding.js';
import { at, detectText } from '../test/helpers/detect.js';
import { denyRealDns, startDnsServer, type TestDnsServer } from '../test/helpers/dns-server.js';
import { rblDetector, reverseName } from './rbl.js';
import type { Detector, DetectorInstance } from './types.js';

const site = { localDomains: ['example.com'], mailHosts: ['10.0.0.5'] };

/** The detector, with its instances kept so the test can drain them (what replay does at the end). */
function capture() {
  const instances: DetectorInstance[] = [];
  const det: Detector = {
    ...(rblDetector as Detector),
    create: (c, deps) => {
      const i = (rblDetector as Detector).create(c, deps);
      instances.push(i);
      return i;
    },
  };
  return { det, drain: () => Promise.all(instances.map((i) => i.drain?.())) };
}

function valid(findings: Finding[]): Finding[] {
  for (const f of findings) findingSchema.parse(f);
  return findings;
}

const login = (s: number, ip: string, account: string, q = 'AB12CD34EF') =>
  `${at(s)} mx postfix/submission/smtpd[300]: ${q}: client=unknown[${ip}], sasl_method=PLAIN, sasl_username=${account}`;
const rblReject = (s: number, ip: string) =>
  `${at(s)} mx postfix/smtpd[301]: NOQUEUE: reject: RCPT from unknown[${ip}]: 554 5.7.1 Service unavailable; Client host [${ip}] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/${ip}; from=<x@example.biz> to=<alice@example.com> proto=ESMTP helo=<bot>`;
const dbl = (s: number, ip: string) =>
  `${at(s)} mx postfix/smtpd[301]: NOQUEUE: reject: RCPT from bad.example.net[${ip}]: 554 5.7.1 Service unavailable; Sender address [x@dbl.example] blocked using dbl.spamhaus.org; from=<x@dbl.example> to=<alice@example.com> proto=ESMTP helo=<bad.example.net>`;
const dnsblog = (s: number, ip: string, zone: string, reply: string) => `${at(s)} mx postfix/dnsblog[911]: addr ${ip} listed by domain ${zone} as ${reply}`;

let undoDeny: () => void;
let srv: TestDnsServer;
let dead: TestDnsServer;

beforeAll(async () => {
  undoDeny = denyRealDns();
  srv = await startDnsServer({
    '9.113.0.203.zen.spamhaus.org': { A: ['127.0.0.2'], ttl: 300 },
    // PBL only: a home user's dynamic address
    '77.113.0.203.zen.spamhaus.org': { A: ['127.0.0.11'] },
    // Spamhaus refusing a query from an open resolver: not a listing
    '78.113.0.203.zen.spamhaus.org': { A: ['127.255.255.254'] },
    '5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.spamhaus.org': { A: ['127.0.0.3'] },
  });
  dead = await startDnsServer({}, { silent: true });
});

afterAll(async () => {
  await srv.close();
  await dead.close();
  undoDeny();
});

describe('rbl: passive', () => {
  it('config parses {} into documented defaults', () => {
    const c = rblDetector.config.parse({});
    expect(c).toMatchObject({ windowMs: 3_600_000, rejectThreshold: 5, zones: ['zen.spamhaus.org'], active: true, activeTtlMs: 21_600_000 });
    expect(c.ignoreReplies['zen.spamhaus.org']).toEqual(['127.0.0.10', '127.0.0.11']);
  });

  it('counts RBL rejects per IP and reports an IP rejected repeatedly (info)', () => {
    const lines = [rblReject(0, '192.0.2.11'), rblReject(30, '192.0.2.11'), rblReject(60, '192.0.2.11'), rblReject(90, '192.0.2.11'), rblReject(120, '192.0.2.11'), rblReject(130, '192.0.2.12')];
    const { findings } = detectText(lines, { detectors: [rblDetector], site });
    expect(valid(findings)).toHaveLength(1);
    expect(findings[0]).toMatchObject({ detector: 'rbl', entity: { kind: 'ip', id: '192.0.2.11' }, severity: 'info', signals: ['rbl-rejected'], window: { count: 5, listCounts: { 'zen.spamhaus.org': 5 } } });
  });

  it('flags a login from an IP that dnsblog saw listed (listed-ip on the account, high)', () => {
    const lines = [dnsblog(0, '192.0.2.200', 'zen.spamhaus.org', '127.0.0.4'), login(600, '192.0.2.200', 'dave@example.com')];
    const { findings } = detectText(lines, { detectors: [rblDetector], site });
    expect(valid(findings)).toHaveLength(1);
    const f = findings[0]!;
    expect(f).toMatchObject({ entity: { kind: 'account', id: 'dave@example.com' }, ip: '192.0.2.200', severity: 'high', signals: ['listed-ip'], window: { how: 'passive', list: 'zen.spamhaus.org', reply: '127.0.0.4' } });
    expect(f.evidence.map((e) => e.offset)).toEqual([expect.any(Number), 0]);
  });

  it('also after an smtpd RBL reject or a postscreen DNSBL rank, but not after a domain (DBL) listing, PBL, or an allowlist hit', () => {
    const lines = [
      rblReject(0, '192.0.2.21'),
      `${at(1)} mx postfix/postscreen[901]: DNSBL rank 5 for [192.0.2.22]:62464`,
      dbl(2, '192.0.2.23'),
      dnsblog(3, '192.0.2.24', 'zen.spamhaus.org', '127.0.0.11'),
      dnsblog(4, '192.0.2.25', 'list.dnswl.org', '127.0.10.0'),
      login(100, '192.0.2.21', 'a@example.com', 'AA00000001'),
      login(101, '192.0.2.22', 'b@example.com', 'AA00000002'),
      login(102, '192.0.2.23', 'c@example.com', 'AA00000003'),
      login(103, '192.0.2.24', 'd@example.com', 'AA00000004'),
      login(104, '192.0.2.25', 'e@example.com', 'AA00000005'),
    ];
    const { findings } = detectText(lines, { detectors: [rblDetector], site });
    expect(valid(findings).map((f) => f.entity.id)).toEqual(['a@example.com', 'b@example.com']);
  });

  it('forgets a passive listing after listedTtlMs', () => {
    const lines = [dnsblog(0, '192.0.2.200', 'bl.spamcop.net', '127.0.0.2'), login(7200, '192.0.2.200', 'dave@example.com')];
    const { findings } = detectText(lines, { detectors: [rblDetector], site, configs: { rbl: { listedTtlMs: 3_600_000 } } });
    expect(findings).toEqual([]);
  });
});

describe('rbl: active (loopback DNS server)', () => {
  it('reverses IPv4 octets and IPv6 nibbles', () => {
    expect(reverseName('203.0.113.9')).toBe('9.113.0.203');
    expect(reverseName('::ffff:203.0.113.9')).toBe('9.113.0.203');
    expect(reverseName('2001:db8::25')).toBe('5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2');
    expect(reverseName('nope')).toBeUndefined();
  });

  it('looks up IPs that log in and flags the accounts on listed ones, once per IP', async () => {
    const dns = createDnsLookup({ servers: [srv.address], timeoutMs: 1000 });
    const { det, drain } = capture();
    const before = srv.queries.length;
    const lines = [
      login(0, '203.0.113.9', 'dave@example.com', 'AA00000001'),
      login(1, '203.0.113.9', 'erin@example.com', 'AA00000002'), // joins the lookup in flight
      login(2, '203.0.113.10', 'frank@example.com', 'AA00000003'), // NXDOMAIN: not listed
      login(3, '203.0.113.77', 'gina@example.com', 'AA00000004'), // PBL only
      login(4, '203.0.113.78', 'hank@example.com', 'AA00000005'), // 127.255.255.254: error code
      login(5, '192.168.1.2', 'ivan@example.com', 'AA00000006'), // private: never queried
      login(6, '10.0.0.5', 'webmail@example.com', 'AA00000007'), // mail host: never queried
      login(7, '2001:db8::25', 'judy@example.com', 'AA00000008'),
    ];
    const { findings } = detectText(lines, { detectors: [det], site, dns });
    expect(findings).toEqual([]); // nothing waits on DNS
    await drain();
    expect(valid(findings).map((f) => [f.entity.id, f.ip, f.window.list, f.window.reply])).toEqual([
      ['dave@example.com', '203.0.113.9', 'zen.spamhaus.org', '127.0.0.2'],
      ['erin@example.com', '203.0.113.9', 'zen.spamhaus.org', '127.0.0.2'],
      ['judy@example.com', '2001:db8::25', 'zen.spamhaus.org', '127.0.0.3'],
    ]);
    expect(findings[0]).toMatchObject({ severity: 'high', signals: ['listed-ip'], window: { how: 'active' }, ts: Date.UTC(2026, 10, 27, 10, 0, 0) });
    const asked = srv.queries.slice(before).map((q) => q.name);
    expect(asked.filter((n) => n === '9.113.0.203.zen.spamhaus.org')).toHaveLength(1);
    expect(asked.some((n) => n.includes('168.192') || n.includes('5.0.0.10'))).toBe(false);
    expect(asked).toHaveLength(5);
  });

  it('answers later logins from the cached result without asking again', async () => {
    const dns = createDnsLookup({ servers: [srv.address] });
    const { det, drain } = capture();
    const r1 = detectText([login(0, '203.0.113.9', 'dave@example.com', 'AA00000001')], { detectors: [det], site, dns });
    await drain();
    expect(r1.findings).toHaveLength(1);
    // same engine state continues: a second login an hour later, after the first answer is cached
    const before = srv.count('9.113.0.203.zen.spamhaus.org');
    r1.engine.onEvent({ kind: 'smtp.client', ts: Date.UTC(2026, 10, 27, 11, 0, 0), host: 'mx', program: 'postfix/submission/smtpd', src: { file: 'x.log', offset: 5 }, queueId: 'AA00000009', ip: '203.0.113.9', clientHost: 'unknown', service: 'submission', account: 'kate@example.com' });
    expect(r1.findings.map((f) => f.entity.id)).toEqual(['dave@example.com', 'kate@example.com']);
    expect(srv.count('9.113.0.203.zen.spamhaus.org')).toBe(before);
  });

  it('does no active lookup without a DNS resolver, or with active: false', async () => {
    const before = srv.queries.length;
    const dns = createDnsLookup({ servers: [srv.address] });
    const { det, drain } = capture();
    detectText([login(0, '203.0.113.9', 'dave@example.com')], { detectors: [det], site });
    const r = detectText([login(0, '203.0.113.9', 'dave@example.com')], { detectors: [det], site, dns, configs: { rbl: { active: false } } });
    await drain();
    expect(r.findings).toEqual([]);
    expect(srv.queries.length).toBe(before);
  });

  it('never stalls on a DNS server that does not answer: returns at once, drain resolves, errors are counted', async () => {
    const dns = createDnsLookup({ servers: [dead.address], timeoutMs: 200 });
    const { det, drain } = capture();
    const lines: string[] = [];
    for (let i = 0; i < 50; i++) lines.push(login(i, `198.51.100.${i + 1}`, `u${i}@example.com`, `AB${String(i).padStart(8, '0')}`));
    const t0 = performance.now();
    const { findings, engine } = detectText(lines, { detectors: [det], site, dns });
    expect(performance.now() - t0).toBeLessThan(150);
    await drain();
    expect(performance.now() - t0).toBeLessThan(1500);
    expect(findings).toEqual([]);
    const errors = engine.store.snapshot()['rbl.dns-errors'] as { m: [string, unknown][] };
    expect(errors.m.map(([k]) => k)).toEqual(['ETIMEOUT']);
  });
});
