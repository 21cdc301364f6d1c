/**
 * Detector contract. A detector is one file under detectors/: an id, a zod
 * config schema whose defaults are documented and safe, the inputs it reads,
 * and a factory. All its state lives in the ScopedStore it is handed (never
 * in module globals), and time comes from events only.
 */
import type { z } from 'zod';
import type { Event, EventKind } from '../src/core/events.js';
import type { Message } from '../src/correlator/message.js';
import type { Finding } from '../src/detect/finding.js';
import type { SiteKnowledge } from '../src/detect/site.js';
import type { ScopedStore } from '../src/detect/windows.js';
import type { DnsLookup } from '../src/detect/dns.js';

export interface DetectorDeps {
  /** This detector's state. */
  store: ScopedStore;
  /** What the site looks like: local domains, trusted networks, aliases... (config + inferred from logs). */
  site: SiteKnowledge;
  /** Report a finding. The engine de-duplicates nothing: detectors re-alert at most once per cooldown. */
  emit: (f: Finding) => void;
  /** Active DNS (DNSBL, SPF); undefined when active checks are off. Never blocks the pipeline. */
  dns?: DnsLookup;
}

export interface DetectorInstance {
  onEvent?(e: Event): void;
  onMessage?(m: Message): void;
  /** Resolves when the detector's outstanding async work (DNS) has finished; replay awaits it at the end. */
  drain?(): Promise<void>;
}

export interface Detector<C = unknown> {
  /** Stable id used in findings and config, e.g. `send-flood`. */
  readonly id: string;
  readonly description: string;
  /** Config schema; `.parse({})` gives the defaults. */
  readonly config: z.ZodType<C>;
  /** Event kinds it reads (the engine routes only these), and whether it reads correlated messages. */
  readonly events: readonly EventKind[];
  readonly messages: boolean;
  create(config: C, deps: DetectorDeps): DetectorInstance;
}

/** Helper so each detector file gets its config type inferred. */
export function defineDetector<S extends z.ZodType>(d: Omit<Detector<z.output<S>>, 'config'> & { config: S }): Detector<z.output<S>> {
  return d as unknown as Detector<z.output<S>>;
}
