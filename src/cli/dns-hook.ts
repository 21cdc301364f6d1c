/** Active DNS for detectors from the config; undefined (off) unless `dns.enabled`. */
import type { FloodgateConfig } from '../config/config.js';
import type { DnsLookup } from '../detect/dns.js';
import { createDnsLookup } from '../detect/dns-lookup.js';

export function dnsFromConfig(cfg: FloodgateConfig): DnsLookup | undefined {
  if (!cfg.dns.enabled) return undefined;
  return createDnsLookup({ servers: cfg.dns.servers.length > 0 ? cfg.dns.servers : undefined, timeoutMs: cfg.dns.timeoutMs, maxQueriesPerSecond: cfg.dns.maxQueriesPerSecond });
}
