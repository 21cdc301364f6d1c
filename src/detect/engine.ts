/**
 * DetectionEngine: routes events (by kind) and correlated messages to the
 * enabled detectors, and hands their findings on. It owns the window store
 * and site knowledge, so one snapshot captures all detection state.
 */
import type { Detector, DetectorInstance } from '../../detectors/types.js';
import type { Event, EventKind } from '../core/events.js';
import type { Message } from '../correlator/message.js';
import type { DnsLookup } from './dns.js';
import type { Finding } from './finding.js';
import type { SiteKnowledge } from './site.js';
import { WindowStore } from './windows.js';

export interface EngineOptions {
  detectors: readonly Detector[];
  /** Per-detector config, already validated (see src/config). Missing → defaults. Disabled detectors are left out by the caller. */
  configs?: Record<string, unknown>;
  site: SiteKnowledge;
  dns?: DnsLookup;
  onFinding: (f: Finding) => void;
  store?: WindowStore;
}

export class DetectionEngine {
  readonly store: WindowStore;
  readonly site: SiteKnowledge;
  private readonly byKind = new Map<EventKind, DetectorInstance[]>();
  private readonly messageReaders: DetectorInstance[] = [];
  private readonly instances: DetectorInstance[] = [];
  findings = 0;

  constructor(opts: EngineOptions) {
    this.store = opts.store ?? new WindowStore();
    this.site = opts.site;
    const emit = (f: Finding) => {
      this.findings++;
      opts.onFinding(f);
    };
    for (const d of opts.detectors) {
      const cfg = d.config.parse(opts.configs?.[d.id] ?? {});
      const inst = d.create(cfg, { store: this.store.scope(d.id), site: this.site, emit, dns: opts.dns });
      for (const k of d.events) {
        let list = this.byKind.get(k);
        if (!list) this.byKind.set(k, (list = []));
        list.push(inst);
      }
      if (d.messages) this.messageReaders.push(inst);
      this.instances.push(inst);
    }
  }

  onEvent(e: Event): void {
    this.site.learnEvent(e);
    const list = this.byKind.get(e.kind);
    if (list === undefined) return;
    for (let i = 0; i < list.length; i++) list[i]!.onEvent?.(e);
  }

  onMessage(m: Message): void {
    for (let i = 0; i < this.messageReaders.length; i++) this.messageReaders[i]!.onMessage?.(m);
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
