import ipaddr from 'ipaddr.js';
import { describe, expect, it } from 'vitest';
import { networkOf } from '../src/detect/site.js';

/** networkOf as it was before its dotted-quad fast path: every address through ipaddr.js. */
function viaIpaddr(ip: string): string {
  let a: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    a = ipaddr.parse(ip);
    if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()) a = (a as ipaddr.IPv6).toIPv4Address();
  } catch {
    return ip;
  }
  if (a.kind() === 'ipv4') {
    const o = (a as ipaddr.IPv4).octets;
    return `${o[0]}.${o[1]}.${o[2]}.0/24`;
  }
  const p = (a as ipaddr.IPv6).parts;
  return `${(p[0] ?? 0).toString(16)}:${(p[1] ?? 0).toString(16)}:${(p[2] ?? 0).toString(16)}::/48`;
}

describe('networkOf', () => {
  it('gives the /24 of a dotted quad and the /48 of IPv6', () => {
    expect(networkOf('203.0.113.9')).toBe('203.0.113.0/24');
    expect(networkOf('2001:db8:1:2::5')).toBe('2001:db8:1::/48');
    expect(networkOf('::ffff:198.51.100.7')).toBe('198.51.100.0/24');
    expect(networkOf('not-an-ip')).toBe('not-an-ip');
  });

  it('agrees with ipaddr.js on odd and hostile forms (octal, hex, short, out of range, junk)', () => {
    const odd = ['010.1.2.3', '0x7f.0.0.1', '1.2.3', '1.2.3.4.5', '256.1.1.1', '1.2.3.256', '1..2.3', '.1.2.3', '1.2.3.', '01.2.3.4', '0.0.0.0', '255.255.255.255', '1.2.3.04', ' 1.2.3.4', '1.2.3.4 ', '1.2.3.4\n', '１.2.3.4', '4294967295', '1.2.3.99999', ''];
    for (const ip of odd) expect(networkOf(ip), ip).toBe(viaIpaddr(ip));
  });

  it('agrees with ipaddr.js on random dotted strings', () => {
    let seed = 7;
    const rnd = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n);
    const piece = () => {
      switch (rnd(6)) {
        case 0: return String(rnd(256));
        case 1: return String(rnd(1000));
        case 2: return '0' + String(rnd(300));
        case 3: return '';
        case 4: return String(rnd(10));
        default: return String(rnd(256));
      }
    };
    for (let i = 0; i < 20_000; i++) {
      const parts = Array.from({ length: 2 + rnd(4) }, piece);
      const ip = parts.join('.');
      expect(networkOf(ip), ip).toBe(viaIpaddr(ip));
    }
  });
});
