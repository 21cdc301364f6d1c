/**
 * DetectionEngine: routes events (by kind) and correlated messages to the
 * enabled detectors, and hands their findings on. It owns the window store
 * and site knowledge, so one snapshot captures all detection state.
 *
 * Each delivery comes with its route (src/detect/route.ts): in distributed
 * mode an item is delivered once per entity it concerns, and detectors ask
 * `owner` before each keyed update; standalone passes none (ALL_ROUTES).
 * Hand-offs between detectors' deliveries go to `onHandOff` (distributed
 * mode: to the partition owning the route), or, without one, straight back
 * into this engine.
 */
import type { Detector, DetectorInstance } from '../../detectors/types.js';
import type { Event, EventKind } from '../core/events.js';
import type { Message } from '../correlator/message.js';
import type { DnsLookup } from './dns.js';
import type { Finding } from './finding.js';
import { ALL_ROUTES, DeliveryOwner, type Delivery, type Route } from './route.js';
import { siteLearnsFrom, type SiteKnowledge } from './site.js';
import { WindowStore } from './windows.js';

export interface EngineOptions {
  detectors: readonly Detector[];
  /** Per-detector config, already validated (see src/config). Missing → defaults. Disabled detectors are left out by the caller. */
  configs?: Record<string, unknown>;
  site: SiteKnowledge;
  dns?: DnsLookup;
  onFinding: (f: Finding) => void;
  store?: WindowStore;
  /** Where detectors' hand-offs go (distributed: to the partition owning `route`); default: this engine's onHandOff. */
  onHandOff?: (h: HandOff) => void;
}

/** Data a detector sends to its own instance in the delivery owning `route` (plain JSON: it may cross Kafka). */
export interface HandOff {
  detector: string;
  route: Route;
  data: unknown;
}

/**
 * Whether detection reads an event at all, with these detectors: one of them
 * may act on it (its kind, and its `reads` test where it has one), or site
 * knowledge may learn from it (onEvent does nothing else with an event). The
 * distributed parse stage stores every event but routes to the detect stage
 * only those this accepts; the rest (queue and connection bookkeeping, most
 * deliveries, inbound mail's smtpd lines, postscreen's) would cross Kafka for
 * nothing.
 */
export function detectionReads(detectors: readonly Detector[]): (e: Event) => boolean {
  // per kind: every event of it (a detector without a test), or the tests of the detectors that take it
  const byKind = new Map<EventKind, true | ((e: Event) => boolean)[]>();
  for (const d of detectors) {
    for (const k of d.events) {
      const cur = byKind.get(k);
      if (cur === true) continue;
      if (d.reads === undefined) byKind.set(k, true);
      else if (cur === undefined) byKind.set(k, [d.reads]);
      else cur.push(d.reads);
    }
  }
  return (e) => {
    const r = byKind.get(e.kind);
    if (r === true) return true;
    if (r !== undefined) for (let i = 0; i < r.length; i++) if (r[i]!(e)) return true;
    return siteLearnsFrom(e);
  };
}

export class DetectionEngine {
  readonly store: WindowStore;
  readonly site: SiteKnowledge;
  private readonly byKind = new Map<EventKind, DetectorInstance[]>();
  private readonly messageReaders: DetectorInstance[] = [];
  private readonly submissionReaders: DetectorInstance[] = [];
  private readonly settledReaders: DetectorInstance[] = [];
  private readonly instances: DetectorInstance[] = [];
  private readonly byId = new Map<string, DetectorInstance>();
  /** What the delivery in progress owns; shared by all detectors (read through DetectorDeps.owner). */
  readonly owner = new DeliveryOwner();
  findings = 0;
  /** Hand-offs received for an unknown detector, on a bad route, or not understood by the detector. */
  handOffsDropped = 0;

  constructor(opts: EngineOptions) {
    this.store = opts.store ?? new WindowStore();
    this.site = opts.site;
    const emit = (f: Finding) => {
      this.findings++;
      opts.onFinding(f);
    };
    const send = opts.onHandOff ?? ((h: HandOff) => this.onHandOff(h));
    for (const d of opts.detectors) {
      const cfg = d.config.parse(opts.configs?.[d.id] ?? {});
      const id = d.id;
      const inst = d.create(cfg, {
        store: this.store.scope(id),
        site: this.site,
        emit,
        dns: opts.dns,
        owner: this.owner,
        handOff: (route, data) => send({ detector: id, route, data }),
      });
      this.byId.set(id, inst);
      for (const k of d.events) {
        let list = this.byKind.get(k);
        if (!list) this.byKind.set(k, (list = []));
        list.push(inst);
      }
      if (d.messages) this.messageReaders.push(inst);
      if (d.submissions === true) this.submissionReaders.push(inst);
      if (d.settled === true) this.settledReaders.push(inst);
      this.instances.push(inst);
    }
  }

  /**
   * One delivery of an event. Site knowledge learns from every delivery
   * (idempotent: a second copy of an item teaches nothing new).
   */
  onEvent(e: Event, route: Delivery = ALL_ROUTES): void {
    this.site.learnEvent(e);
    const list = this.byKind.get(e.kind);
    if (list === undefined) return;
    const o = this.owner;
    o.enter(route, e);
    for (let i = 0; i < list.length; i++) list[i]!.onEvent?.(e);
    o.enter(undefined, undefined);
  }

  onMessage(m: Message, route: Delivery = ALL_ROUTES): void {
    this.deliver(this.messageReaders, 'onMessage', m, route);
  }

  /** One delivery of a submission (see Detector.submissions). */
  onSubmission(m: Message, route: Delivery = ALL_ROUTES): void {
    this.deliver(this.submissionReaders, 'onSubmission', m, route);
  }

  /** One delivery of a held message's settled recipients (see Detector.settled). */
  onSettled(m: Message, route: Delivery = ALL_ROUTES): void {
    this.deliver(this.settledReaders, 'onSettled', m, route);
  }

  /** A message-shaped item to the detectors that read it, owning only its route meanwhile. */
  private deliver(readers: readonly DetectorInstance[], read: 'onMessage' | 'onSubmission' | 'onSettled', m: Message, route: Delivery): void {
    const o = this.owner;
    o.enter(route, m);
    for (let i = 0; i < readers.length; i++) readers[i]![read]?.(m);
    o.enter(undefined, undefined);
  }

  /**
   * A hand-off arriving in the delivery owning its route. May run inside
   * another delivery (standalone, or both routes in this engine): what that
   * one owns is restored afterwards.
   */
  onHandOff(h: HandOff): void {
    const inst = this.byId.get(h.detector);
    const k = h.route?.kind;
    if (inst?.onHandOff === undefined || (k !== 'account' && k !== 'ip' && k !== 'host') || typeof h.route.key !== 'string') {
      this.handOffsDropped++;
      return;
    }
    const o = this.owner;
    const prevRoute = o.current;
    const prevItem = o.currentItem;
    o.enter(h.route, undefined);
    try {
      if (!inst.onHandOff(h.data)) this.handOffsDropped++;
    } finally {
      o.enter(prevRoute, prevItem);
    }
  }

  /** Wait for detectors' outstanding async work (DNS lookups) so their findings are in. */
  async drain(): Promise<void> {
    await Promise.all(this.instances.map((i) => i.drain?.()));
  }

  snapshot(): { store: Record<string, unknown>; site: unknown } {
    return { store: this.store.snapshot(), site: this.site.snapshot() };
  }

  restore(s: { store: Record<string, unknown>; site: unknown }): void {
    this.store.restore(s.store);
    this.site.restore(s.site);
  }
}
