/**
 * The detect stage's state for one partition of the events topic: its own
 * detector windows and policy, fed every delivery of the partition with the
 * route it came by, so each keyed update happens in the partition owning its
 * entity (see src/detect/route.ts). Site knowledge (learnt local domains) is
 * not keyed by entity: the worker's partitions share one, synchronised
 * through Redis. Pure: no Kafka, no clock.
 */
import type { FloodgateConfig } from '../config/config.js';
import type { DnsLookup } from '../detect/dns.js';
import { DetectionEngine, type HandOff } from '../detect/engine.js';
import type { Finding } from '../detect/finding.js';
import type { SiteKnowledge } from '../detect/site.js';
import { Policy, type Decision } from '../policy/policy.js';
import type { RoutedItem } from './wire.js';

export interface DetectPartitionSnapshot {
  v: 1;
  store: Record<string, unknown>;
  policy: unknown;
}

export interface DetectPartitionSinks {
  onFinding(f: Finding): void;
  onDecision(d: Decision): void;
  /** A detector's hand-off to the partition owning its route (possibly this one). */
  onHandOff(h: HandOff): void;
}

export class DetectPartition {
  readonly engine: DetectionEngine;
  readonly policy: Policy;

  constructor(cfg: FloodgateConfig, site: SiteKnowledge, sinks: DetectPartitionSinks, dns?: DnsLookup) {
    this.policy = new Policy(cfg.policy);
    this.engine = new DetectionEngine({
      detectors: cfg.enabledDetectors,
      configs: cfg.detectorConfigs,
      site,
      ...(dns ? { dns } : {}),
      onFinding: (f) => {
        sinks.onFinding(f);
        const d = this.policy.onFinding(f);
        if (d) sinks.onDecision(d);
      },
      onHandOff: (h) => sinks.onHandOff(h),
    });
  }

  feed(it: RoutedItem): void {
    if (it.event !== undefined) this.engine.onEvent(it.event, it.route);
    else if (it.message !== undefined) this.engine.onMessage(it.message, it.route);
    else if (it.submission !== undefined) this.engine.onSubmission(it.submission, it.route);
    else if (it.settled !== undefined) this.engine.onSettled(it.settled, it.route);
    else if (it.handOff !== undefined) this.engine.onHandOff({ detector: it.handOff.detector, route: it.route, data: it.handOff.data });
  }

  drain(): Promise<void> {
    return this.engine.drain();
  }

  snapshot(): DetectPartitionSnapshot {
    return { v: 1, store: this.engine.store.snapshot(), policy: this.policy.snapshot() };
  }

  restore(s: DetectPartitionSnapshot): void {
    this.engine.store.restore(s.store);
    this.policy.restore(s.policy);
  }
}
