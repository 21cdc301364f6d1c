import { describe, expect, it } from 'vitest';
import type { Event } from '../src/core/events.js';
import { domainOf, SiteKnowledge } from '../src/detect/site.js';

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
