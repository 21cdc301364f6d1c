/**
 * Active DNS for detectors, injected so tests use a DNS server on loopback
 * and so nothing ever waits on DNS in the hot path: lookups are async,
 * cached by TTL, rate-limited and time-limited; callers act on the answer
 * when it arrives.
 */
export interface DnsLookup {
  /** A records of `name`; [] for NXDOMAIN. Rejects on timeout/servfail. */
  a(name: string): Promise<{ address: string; ttl: number }[]>;
  /** TXT records of `name` (each record's chunks joined). */
  txt(name: string): Promise<string[]>;
  /**
   * Any record type, shaped like node's `dns.resolve(name, rrtype)` (A/AAAA/PTR: strings,
   * TXT: chunk arrays, MX: {exchange, priority}); [] for NXDOMAIN/NODATA. For SPF evaluation.
   */
  resolve?(name: string, rrtype: DnsRrType): Promise<unknown[]>;
}

export type DnsRrType = 'A' | 'AAAA' | 'TXT' | 'MX' | 'PTR';
