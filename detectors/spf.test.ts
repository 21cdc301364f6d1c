import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDnsLookup } from '../src/detect/dns-lookup.js';
import { findingSchema, type Finding } from '../src/detect/finding.js';
import type { SiteConfig } from '../src/detect/site.js';
import { at, detectText } from '../test/helpers/detect.js';
import { denyRealDns, startDnsServer, type TestDnsServer } from '../test/helpers/dns-server.js';
import { mailauthResolver, spfDetector } from './spf.js';
import type { Detector, DetectorInstance } from './types.js';

const site: Partial<SiteConfig> = {
  localDomains: ['example.com'],
  trustedNetworks: ['127.0.0.0/8', '10.0.0.0/16'],
  mailHosts: ['10.0.0.5'],
  outboundIps: ['192.0.2.1'],
  allowedSenderDomains: ['ally.example'],
};

function capture() {
  const instances: DetectorInstance[] = [];
  const det: Detector = {
    ...(spfDetector as Detector),
    create: (c, deps) => {
      const i = (spfDetector as Detector).create(c, deps);
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

let qn = 0;
/** A message relayed to gmail: submission with optional SASL user, qmgr from, smtp delivery, removed. */
function message(s: number, ip: string, sender: string, sasl?: string, to = 'victim@gmail.com'): string[] {
  const q = `5B${(0x100000 + qn++).toString(16).toUpperCase()}C`;
  const auth = sasl ? `, sasl_method=LOGIN, sasl_username=${sasl}` : '';
  return [
    `${at(s)} mx postfix/submission/smtpd[100]: ${q}: client=unknown[${ip}]${auth}`,
    `${at(s)} mx postfix/qmgr[102]: ${q}: from=<${sender}>, size=1200, nrcpt=1 (queue active)`,
    `${at(s + 1)} mx postfix/smtp[103]: ${q}: to=<${to}>, relay=gmail-smtp-in.l.google.com[142.250.1.27]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 2.0.0 OK)`,
    `${at(s + 1)} mx postfix/qmgr[102]: ${q}: removed`,
  ];
}

let undoDeny: () => void;
let srv: TestDnsServer;

beforeAll(async () => {
  undoDeny = denyRealDns();
  srv = await startDnsServer({
    'yahoo.com.tw': { TXT: ['v=spf1 include:_spf.example.net -all'] },
    '_spf.example.net': { TXT: ['v=spf1 ip4:198.51.100.0/24 ip6:2001:db8:77::/48 -all'] },
    'softie.example': { TXT: ['v=spf1 mx ~all'], MX: [{ exchange: 'mx.softie.example', priority: 10 }] },
    'mx.softie.example': { A: ['198.51.100.80'] },
    'partner.example': { TXT: ['v=spf1 a:relay.partner.example -all'] },
    'relay.partner.example': { A: ['192.0.2.1'] },
    'nospf.example': { A: ['198.51.100.90'] },
    'ally.example': { TXT: ['v=spf1 -all'] },
    'slow.example': { drop: true },
  });
});

afterAll(async () => {
  await srv.close();
  undoDeny();
});

describe('spf: inbound', () => {
  it('config parses {} into documented defaults', () => {
    expect(spfDetector.config.parse({})).toEqual({
      windowMs: 3_600_000,
      inboundThreshold: 1,
      outbound: true,
      cacheTtlMs: 3_600_000,
      pendingTtlMs: 60_000,
      maxOutboundIps: 4,
      cooldownMs: 3_600_000,
      maxKeys: 50_000,
    });
  });

  it('flags SPF fails for our own domain (spoofing), counts foreign ones without reporting them', () => {
    const lines = [
      `${at(0)} mail policyd-spf[3001]: prepend Received-SPF: Softfail (domain owner discourages use of this host) identity=mailfrom; client-ip=198.51.100.7; helo=spam.example; envelope-from=random@yahoo.com.tw; receiver=user@example.com`,
      `${at(1)} mail policyd-spf[3001]: Fail; identity=mailfrom; client-ip=203.0.113.6; helo=forged.example; envelope-from=ceo@example.com; receiver=staff@example.com`,
      `${at(2)} mail policyd-spf[3001]: Fail; identity=mailfrom; client-ip=203.0.113.6; helo=forged.example; envelope-from=cfo@example.com; receiver=staff@example.com`,
      // smtpd's own SPF reject (what the perl daemon leaves as the only line with the IP)
      `${at(3)} mail postfix/smtpd[1301]: NOQUEUE: reject: RCPT from mx.forged.example[192.0.2.13]: 550 5.7.23 <alice@example.com>: Recipient address rejected: Message rejected due to: SPF fail - not authorized. Please see http://www.openspf.net/Why?s=mfrom;id=ceo@example.com;ip=192.0.2.13;r=<UNKNOWN>; from=<ceo@example.com> to=<alice@example.com> proto=ESMTP helo=<mx.forged.example>`,
      // perl daemon: no client IP on the result line → cannot name an entity
      `${at(4)} mail postfix/policy-spf[4001]: : SPF fail (Mechanism '-all' matched): Envelope-from: ceo@example.com`,
      // HELO identity, pass, and our own mail host: not spoofing
      `${at(5)} mail postfix/policy-spf[4001]: : SPF softfail (Mechanism '~all' matched): HELO-name: bad.helo.example`,
      `${at(6)} mail policyd-spf[3001]: prepend Received-SPF: Pass (mailfrom) identity=mailfrom; client-ip=192.0.2.10; helo=mx.example.org; envelope-from=news@example.com; receiver=<UNKNOWN>`,
      `${at(7)} mail policyd-spf[3001]: Fail; identity=mailfrom; client-ip=10.0.0.5; helo=mailbox.example.com; envelope-from=bob@example.com; receiver=x@example.com`,
    ];
    const { findings } = detectText(lines, { detectors: [spfDetector], site });
    expect(valid(findings).map((f) => [f.entity.id, f.severity, f.signals[0]])).toEqual([
      ['203.0.113.6', 'medium', 'spf-inbound-fail'],
      ['192.0.2.13', 'medium', 'spf-inbound-fail'],
    ]);
    expect(findings[0]!.window).toMatchObject({ count: 1, foreignFails: 1, result: 'fail' });
    expect(findings[0]!.summary).toMatch(/spoofing example\.com/);
  });
});

describe('spf: outbound (mailauth against the loopback DNS server)', () => {
  it('adapts DnsLookup to mailauth: node shapes, ENODATA on empty answers', async () => {
    const r = mailauthResolver(createDnsLookup({ servers: [srv.address] }));
    expect(await r('yahoo.com.tw', 'TXT')).toEqual([['v=spf1 include:_spf.example.net -all']]);
    expect(await r('softie.example', 'MX')).toEqual([{ exchange: 'mx.softie.example', priority: 10 }]);
    await expect(r('nowhere.example', 'A')).rejects.toMatchObject({ code: 'ENODATA' });
  });

  it('flags an account sending as a foreign domain whose SPF excludes our outbound IP (the yahoo.com.tw case)', async () => {
    const dns = createDnsLookup({ servers: [srv.address] });
    const { det, drain } = capture();
    const lines = [
      ...message(0, '203.0.113.9', 'random@yahoo.com.tw', 'alice@example.com'),
      ...message(10, '203.0.113.9', 'other@yahoo.com.tw', 'alice@example.com'), // same domain: joins / cached, one finding per cooldown
      ...message(20, '203.0.113.20', 'bob@example.com', 'bob@example.com'), // own address
      ...message(30, '203.0.113.21', 'x@softie.example', 'carol@example.com'), // ~all → softfail
      ...message(40, '203.0.113.22', 'd@partner.example', 'dan@example.com'), // SPF authorises our IP
      ...message(50, '203.0.113.23', 'e@nospf.example', 'eve@example.com'), // no SPF record
      ...message(60, '203.0.113.24', 'f@ally.example', 'fay@example.com'), // allowed sender domain: not evaluated
      ...message(70, '10.0.3.7', 'printer@yahoo.com.tw'), // trusted client without SASL → entity ip
      ...message(80, '10.0.0.5', 'zimbra@yahoo.com.tw'), // mail host without SASL: cannot attribute
      ...message(90, '203.0.113.9', 'random@yahoo.com.tw', 'alice@example.com', 'colleague@example.com'), // local recipient only
    ];
    const t0 = performance.now();
    const { findings } = detectText(lines, { detectors: [det], site, dns });
    expect(performance.now() - t0).toBeLessThan(500);
    await drain();
    // evaluations finish in any order
    const got = valid(findings).map((f) => [f.entity.kind, f.entity.id, f.severity, f.window.domain, f.window.result]);
    expect(got.sort((x, y) => String(x[1]).localeCompare(String(y[1])))).toEqual([
      ['ip', '10.0.3.7', 'high', 'yahoo.com.tw', 'fail'],
      ['account', 'alice@example.com', 'high', 'yahoo.com.tw', 'fail'],
      ['account', 'carol@example.com', 'medium', 'softie.example', 'softfail'],
    ]);
    expect(srv.count('relay.partner.example', 'A')).toBeGreaterThan(0); // partner.example was evaluated (pass)
    const f = findings.find((x) => x.entity.id === 'alice@example.com')!;
    expect(f).toMatchObject({ detector: 'spf', account: 'alice@example.com', signals: ['spf-outbound-fail'], window: { perIp: { '192.0.2.1': 'fail' }, record: 'v=spf1 include:_spf.example.net -all' } });
    expect(f.summary).toMatch(/yahoo\.com\.tw's SPF does not allow our outbound IP/);
    expect(f.ts).toBe(Date.UTC(2026, 10, 27, 10, 0, 0));
    expect(srv.count('ally.example')).toBe(0);
  });

  it('reuses a cached verdict per domain without asking DNS again', async () => {
    const dns = createDnsLookup({ servers: [srv.address] });
    const { det, drain } = capture();
    const r = detectText(message(0, '203.0.113.9', 'random@yahoo.com.tw', 'alice@example.com'), { detectors: [det], site, dns });
    await drain();
    const before = srv.queries.length;
    const more = message(120, '203.0.113.66', 'spam@yahoo.com.tw', 'mallory@example.com');
    const again = detectText(more, { detectors: [det], site, dns }); // a fresh engine: its own cache, but the DnsLookup cache answers
    await drain();
    expect(again.findings.map((f) => f.entity.id)).toEqual(['mallory@example.com']);
    expect(r.findings.map((f) => f.entity.id)).toEqual(['alice@example.com']);
    expect(srv.queries.length).toBe(before);
  });

  it('skips outbound SPF without outbound IPs or without DNS', async () => {
    const before = srv.queries.length;
    const dns = createDnsLookup({ servers: [srv.address] });
    const { det, drain } = capture();
    const a = detectText(message(0, '203.0.113.9', 'random@yahoo.com.tw', 'alice@example.com'), { detectors: [det], site: { ...site, outboundIps: [] }, dns });
    const b = detectText(message(0, '203.0.113.9', 'random@yahoo.com.tw', 'alice@example.com'), { detectors: [det], site });
    await drain();
    expect([...a.findings, ...b.findings]).toEqual([]);
    expect(srv.queries.length).toBe(before);
  });

  it('never stalls when the sender domain does not answer: returns at once, drain resolves, temperror is not reported', async () => {
    const dns = createDnsLookup({ servers: [srv.address], timeoutMs: 200 });
    const { det, drain } = capture();
    const t0 = performance.now();
    const { findings, engine } = detectText(message(0, '203.0.113.9', 'z@slow.example', 'alice@example.com'), { detectors: [det], site, dns });
    expect(performance.now() - t0).toBeLessThan(150);
    await drain();
    expect(performance.now() - t0).toBeLessThan(1500);
    expect(findings).toEqual([]);
    const errors = engine.store.snapshot()['spf.dns-errors'] as { m: [string, unknown][] };
    expect(errors.m.map(([k]) => k)).toEqual(['temperror']);
  });
});
