import { describe, expect, it } from 'vitest';
import type { Event } from '../src/core/events.js';
import { domainOf, SiteKnowledge } from '../src/detect/site.js';
import { detectionReads } from '../src/detect/engine.js';
import { detectors } from '../detectors/index.js';

const tls = (host: string, ts: number): Event => ({
  kind: 'smtp.tls',
  ts,
  host,
  program: 'postfix/smtpd',
  src: { file: 'f', offset: 0 },
  service: 'smtpd',
  direction: 'in',
  ip: '192.0.2.1',
  tlsProtocol: 'TLSv1.3',
  cipher: 'TLS_AES_256_GCM_SHA384',
});

describe('SiteKnowledge: hosts that log TLS handshakes', () => {
  it('keeps the most recently seen hosts when full, a host seen again counting as recent', () => {
    const site = new SiteKnowledge();
    const T = 1_000_000;
    for (let i = 0; i < 10_000; i++) site.learnEvent(tls(`h${i}`, T + i));
    site.learnEvent(tls('h0', T + 20_000)); // seen again: now the newest
    site.learnEvent(tls('h0', T + 20_001));
    site.learnEvent(tls('new1', T + 20_002)); // full: the oldest (h1) goes
    expect(site.logsTlsHandshakes('h0', T + 20_003, 60_000)).toBe(true);
    expect(site.logsTlsHandshakes('h1', T + 20_003, 60_000)).toBe(false);
    expect(site.logsTlsHandshakes('h2', T + 20_003, 60_000)).toBe(true);
    // a restored copy continues in the same order
    const copy = new SiteKnowledge();
    copy.restore(JSON.parse(JSON.stringify(site.snapshot())));
    copy.learnEvent(tls('h2', T + 20_004)); // h2 becomes the newest, so h3 is the oldest
    copy.learnEvent(tls('new2', T + 20_005));
    expect(copy.logsTlsHandshakes('h2', T + 20_006, 60_000)).toBe(true);
    expect(copy.logsTlsHandshakes('h3', T + 20_006, 60_000)).toBe(false);
  });

  it('after a restore, orders a host by the restored state, not by what it saw before', () => {
    const site = new SiteKnowledge();
    const T = 1_000_000;
    for (let i = 0; i < 10_000; i++) site.learnEvent(tls(`h${i}`, T + i));
    const before = JSON.parse(JSON.stringify(site.snapshot())) as unknown; // h0 is the oldest here
    site.learnEvent(tls('h0', T + 20_000)); // h0 the newest
    site.restore(before); // h0 the oldest again
    site.learnEvent(tls('h0', T + 20_001)); // seen: the newest again
    site.learnEvent(tls('new', T + 20_002)); // full: h1 goes, not h0
    expect(site.logsTlsHandshakes('h0', T + 20_003, 60_000)).toBe(true);
    expect(site.logsTlsHandshakes('h1', T + 20_003, 60_000)).toBe(false);
  });

  it('keeps the newest time of a host seen over and over, and forgets it after the TTL', () => {
    const site = new SiteKnowledge();
    site.learnEvent(tls('mx1', 1000));
    site.learnEvent(tls('mx1', 5000));
    site.learnEvent(tls('mx1', 9000));
    expect(site.logsTlsHandshakes('mx1', 9000 + 4000, 4000)).toBe(true);
    expect(site.logsTlsHandshakes('mx1', 9000 + 4001, 4000)).toBe(false);
    site.learnEvent(tls('mx1', 20_000)); // forgotten above: learnt again
    expect(site.logsTlsHandshakes('mx1', 20_000, 4000)).toBe(true);
  });
});

describe('domainOf', () => {
  it('is the lowercased part after the last @, or empty without one', () => {
    expect(domainOf('Bob@Example.COM')).toBe('example.com');
    expect(domainOf('"a@b"@x.org')).toBe('x.org');
    expect(domainOf('postmaster')).toBe('');
    expect(domainOf('user@')).toBe('');
    expect(domainOf('@only.example')).toBe('only.example');
    expect(domainOf('')).toBe('');
  });
});

describe('detectionReads: what the parse stage sends on to the detect stage', () => {
  const base = { ts: 1_000_000, host: 'mx1', src: { file: 'f', offset: 0 } };
  const delivery = (agent: string, status: string): Event =>
    ({ ...base, kind: 'delivery', program: `postfix/${agent}`, queueId: 'Q1', to: 'ann@local.example', agent, status }) as unknown as Event;
  const queueFrom = { ...base, kind: 'queue.from', program: 'postfix/qmgr', queueId: 'Q1', from: 'bob@x.example' } as unknown as Event;
  const authOk = { ...base, kind: 'auth', program: 'zimbra', account: 'ann@local.example', outcome: 'success', ip: '192.0.2.9', protocol: 'imap' } as unknown as Event;
  const authFail = { ...authOk, outcome: 'failure' } as unknown as Event;

  it('with no detectors: only what site knowledge learns from (local deliveries, logins, TLS handshakes in)', () => {
    const reads = detectionReads([]);
    expect(reads(delivery('lmtp', 'sent'))).toBe(true); // a local domain
    expect(reads(delivery('smtp', 'sent'))).toBe(false); // relayed out: teaches nothing
    expect(reads(delivery('lmtp', 'deferred'))).toBe(false);
    expect(reads(authOk)).toBe(true);
    expect(reads(authFail)).toBe(false);
    expect(reads(tls('mx1', 1))).toBe(true);
    expect(reads(queueFrom)).toBe(false);
  });

  it('adds the kinds the given detectors take', () => {
    const reads = detectionReads(detectors.filter((d) => d.id === 'auth-attack'));
    expect(reads(authFail)).toBe(true);
    expect(reads(queueFrom)).toBe(false);
    // a detector without a `reads` test takes every event of its kinds
    const bare = { ...detectors.find((d) => d.id === 'auth-attack')!, reads: undefined };
    expect(detectionReads([bare])({ ...base, kind: 'smtp.disconnect', program: 'postfix/smtpd', ip: '192.0.2.9' } as unknown as Event)).toBe(true);
  });

  it("of a detector's kinds, only the events it may act on (its `reads` test)", () => {
    const all = detectionReads(detectors);
    const ev = (kind: string, fields: Record<string, unknown>) => ({ ...base, kind, program: 'postfix/smtpd', ...fields }) as unknown as Event;
    const read: [string, Event][] = [
      ['SMTP AUTH', ev('smtp.client', { queueId: 'Q1', ip: '192.0.2.9', service: 'submission', account: 'ann@local.example' })],
      ['a disconnect after failed AUTH', ev('smtp.disconnect', { ip: '192.0.2.9', authFailed: true })],
      ['a postscreen DNSBL rank', ev('postscreen', { ip: '192.0.2.9', action: 'dnsbl', rank: 3 })],
      ['an RBL reject', ev('smtp.reject', { ip: '192.0.2.9', category: 'rbl', reason: 'blocked' })],
      ['relay denied', ev('smtp.reject', { ip: '192.0.2.9', category: 'relay-denied', reason: 'Relay access denied' })],
      ['an SPF fail', ev('spf', { ip: '192.0.2.9', result: 'fail', sender: 'x@y.example' })],
      ['an SPF reject', ev('smtp.reject', { ip: '192.0.2.9', category: 'spf', reason: 'SPF fail', from: 'x@y.example' })],
      ['an inbound TLS handshake', ev('smtp.tls', { ip: '192.0.2.9', direction: 'in' })],
      ['a failed login', authFail],
      ['a successful login', authOk],
      ['a DNSBL answer', ev('dnsbl', { ip: '192.0.2.9', list: 'zen.spamhaus.org', reply: '127.0.0.2' })],
    ];
    const notRead: [string, Event][] = [
      ['inbound mail from a client without SASL', ev('smtp.client', { queueId: 'Q1', ip: '192.0.2.9', service: 'smtpd' })],
      ['a disconnect without AUTH', ev('smtp.disconnect', { ip: '192.0.2.9' })],
      ['a disconnect after successful AUTH', ev('smtp.disconnect', { ip: '192.0.2.9', authFailed: false })],
      ['a postscreen connect', ev('postscreen', { ip: '192.0.2.9', action: 'connect' })],
      ['a recipient reject', ev('smtp.reject', { ip: '192.0.2.9', category: 'recipient', reason: 'User unknown' })],
      ['an SPF pass', ev('spf', { ip: '192.0.2.9', result: 'pass', sender: 'x@y.example' })],
    ];
    for (const [what, e] of read) expect(all(e), what).toBe(true);
    for (const [what, e] of notRead) expect(all(e), what).toBe(false);
    // every detector's test accepts some event of each of its kinds, or the kind would be dead weight
    for (const d of detectors) for (const kind of d.events) expect(read.some(([, e]) => e.kind === kind && (d.reads?.(e) ?? true)), `${d.id} ${kind}`).toBe(true);
  });

  it('learns the domain an alias was addressed at (orig_to) from a local delivery, not from mail relayed out', () => {
    const site = new SiteKnowledge();
    const aliased = (agent: string, to: string, origTo: string) => ({ ...(delivery(agent, 'sent') as object), to, origTo }) as unknown as Event;
    // Zimbra's domain alias: mail to ann@alias.example lands in ann@local.example's mailbox
    site.learnEvent(aliased('lmtp', 'ann@local.example', 'ann@Alias.Example'));
    // a .forward to outside: nothing of gmail.com or of the relayed copy is ours
    site.learnEvent(aliased('smtp', 'ann.private@gmail.com', 'ann@local.example'));
    site.learnEvent(aliased('local', 'root@local.example', 'postmaster'));
    expect(site.learntDomains().sort()).toEqual(['alias.example', 'local.example']);
    expect(site.isLocalDomain('alias.example')).toBe(true);
    expect(site.isLocalDomain('gmail.com')).toBe(false);
    // configured domains are the whole truth: nothing is learnt beside them
    const configured = new SiteKnowledge({ localDomains: ['local.example'] });
    configured.learnEvent(aliased('lmtp', 'ann@local.example', 'ann@alias.example'));
    expect(configured.isLocalDomain('alias.example')).toBe(false);
  });

  it('learnEvent learns nothing from an event siteLearnsFrom refuses (it begins with that check)', () => {
    const site = new SiteKnowledge();
    site.learnEvent(delivery('smtp', 'sent'));
    site.learnEvent(queueFrom);
    expect(site.learntDomains()).toEqual([]);
    site.learnEvent(delivery('lmtp', 'sent'));
    expect(site.learntDomains()).toEqual(['local.example']);
  });
});
