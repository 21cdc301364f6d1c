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
import type { Route } from '../src/detect/route.js';

/**
 * What the delivery in progress owns (see src/detect/route.ts). In
 * distributed mode an item about an account and an IP is delivered twice,
 * once to the partition owning each: a detector updates state keyed by an
 * entity, and emits findings about it, only when the delivery owns that
 * entity. Standalone, every delivery owns everything. Never ask it from an
 * asynchronous callback (it then owns nothing): hand the result off instead.
 */
export interface Owner {
  account(id: string): boolean;
  ip(id: string): boolean;
  /** The item's first delivery: state that belongs to no entity (site-wide counts) is updated there only. */
  primary(): boolean;
}

export interface DetectorDeps {
  /** This detector's state. */
  store: ScopedStore;
  /** What the site looks like: local domains, trusted networks, aliases... (config + inferred from logs). */
  site: SiteKnowledge;
  /** Report a finding. The engine de-duplicates nothing: detectors re-alert at most once per cooldown. */
  emit: (f: Finding) => void;
  /** Active DNS (DNSBL, SPF); undefined when active checks are off. Never blocks the pipeline. */
  dns?: DnsLookup;
  owner: Owner;
  /**
   * Deliver `data` (plain JSON) to this detector's onHandOff in the delivery
   * owning `to`: how state about one entity leads to a finding about another
   * (a listed IP logging in to an account), and how asynchronous results
   * come back to their entity's owner. Standalone it runs at once.
   */
  handOff(to: Route, data: unknown): void;
}

export interface DetectorInstance {
  onEvent?(e: Event): void;
  onMessage?(m: Message): void;
  /** An authenticated account's message as queued (see Detector.submissions); read it now, keep nothing of the object. */
  onSubmission?(m: Message): void;
  /** Recipients of a message held in the queue, settled before it ends (see Detector.settled); read it now, keep nothing of the object. */
  onSettled?(m: Message): void;
  /** Data this detector handed off (see DetectorDeps.handOff); false when it is not understood (counted, skipped). */
  onHandOff?(data: unknown): boolean;
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
  /**
   * Of those kinds, the events it may act on: a cheap test of the fields its
   * onEvent checks before anything else (an inbound `smtp.client` without a
   * SASL user, a postscreen line that is no DNSBL rank...), true for at least
   * every event it does something with, whatever its config. The distributed
   * parse stage sends the detect stage only events some detector may act on
   * (see detectionReads); standalone delivers every event of the kinds.
   * Absent: every event of its kinds.
   */
  readonly reads?: (e: Event) => boolean;
  readonly messages: boolean;
  /**
   * Whether it reads submissions: each message an authenticated account
   * sends, once, as soon as the queue manager takes it (sender, SASL user,
   * client and nrcpt known; no delivery yet), or when the correlator lets
   * it go if no queue manager line came (see Correlator's onSubmission). A
   * message whose recipients are deferred stays open for days, so what
   * counts sending must not wait for messages to finish.
   */
  readonly submissions?: boolean;
  /**
   * Whether it reads settled recipients: a message held in the queue (a
   * recipient still deferred on a retry 10 min after its first deferral)
   * has its recipients handed over as their outcome becomes known, each
   * once, in a copy of the message whose `recipients` are those (see
   * Correlator's onSettled). Each is marked `settled`, and the finished
   * message carries the marks: a reader counts those there no more.
   */
  readonly settled?: boolean;
  create(config: C, deps: DetectorDeps): DetectorInstance;
}

/** Helper so each detector file gets its config type inferred. */
export function defineDetector<S extends z.ZodType>(d: Omit<Detector<z.output<S>>, 'config'> & { config: S }): Detector<z.output<S>> {
  return d as unknown as Detector<z.output<S>>;
}
