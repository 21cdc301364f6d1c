/**
 * The whole detection pipeline for one process: records → parsers →
 * correlator → detectors → policy. `floodgate replay` and `floodgate run`
 * both drive this class; only where lines come from differs.
 */
import type { Event } from '../core/events.js';
import type { LogRecord } from '../core/record.js';
import { Correlator, type CorrelatorSnapshot } from '../correlator/correlator.js';
import type { Message } from '../correlator/message.js';
import type { FloodgateConfig } from '../config/config.js';
import type { DnsLookup } from '../detect/dns.js';
import { DetectionEngine } from '../detect/engine.js';
import type { Finding } from '../detect/finding.js';
import { SiteKnowledge } from '../detect/site.js';
import { Policy, type Decision } from '../policy/policy.js';
import { LineParser } from './line-parser.js';
import { emptyStats, type ParseStats } from './stats.js';

export interface PipelineSinks {
  onEvent?: (e: Event) => void;
  onMessage?: (m: Message) => void;
  onFinding?: (f: Finding) => void;
  onDecision?: (d: Decision) => void;
}

export interface PipelineSnapshot {
  v: 1;
  correlator: CorrelatorSnapshot;
  engine: ReturnType<DetectionEngine['snapshot']>;
  policy: unknown;
  stats: ParseStats;
  counters: PipelineCounters;
}

export interface PipelineCounters {
  findings: number;
  decisions: number;
  byAction: Record<string, number>;
}

export class DetectPipeline {
  readonly stats: ParseStats = emptyStats();
  readonly lines: LineParser;
  readonly correlator: Correlator;
  readonly engine: DetectionEngine;
  readonly policy: Policy;
  readonly counters: PipelineCounters = { findings: 0, decisions: 0, byAction: {} };
  private readonly out: Event[] = [];

  constructor(cfg: FloodgateConfig, sinks: PipelineSinks, deps: { dns?: DnsLookup } = {}) {
    this.lines = new LineParser(this.stats);
    this.policy = new Policy(cfg.policy);
    this.engine = new DetectionEngine({
      detectors: cfg.enabledDetectors,
      configs: cfg.detectorConfigs,
      site: new SiteKnowledge(cfg.site),
      dns: deps.dns,
      onFinding: (f) => {
        this.counters.findings++;
        sinks.onFinding?.(f);
        const d = this.policy.onFinding(f);
        if (d) {
          this.counters.decisions++;
          this.counters.byAction[d.action] = (this.counters.byAction[d.action] ?? 0) + 1;
          sinks.onDecision?.(d);
        }
      },
    });
    const onMessage = sinks.onMessage;
    this.correlator = new Correlator(
      (m) => {
        this.stats.messages++;
        onMessage?.(m);
        this.engine.onMessage(m);
      },
      {
        idleTimeoutMs: cfg.correlator.idleTimeoutMs,
        maxEntries: cfg.correlator.maxEntries,
        heldAfterMs: cfg.correlator.heldAfterMs,
        onSubmission: (m) => this.engine.onSubmission(m),
        onSettled: (m) => this.engine.onSettled(m),
      },
    );
    this.onEvent = sinks.onEvent;
  }

  private readonly onEvent: ((e: Event) => void) | undefined;

  /** Feed one enveloped record (see LineParser.envelope). */
  feed(rec: LogRecord): void {
    const out = this.out;
    // emptied every 256 events, not per record: setting an array's length is a runtime call
    const from = out.length;
    this.lines.dispatchRecord(rec, out);
    for (let i = from; i < out.length; i++) {
      const e = out[i]!;
      this.onEvent?.(e);
      this.correlator.push(e);
      this.engine.onEvent(e);
    }
    if (out.length >= 256) out.length = 0;
  }

  /**
   * All detection state as plain JSON (correlator, detector windows, site
   * knowledge, policy, counters). Call between feed()s, after drain(), so no
   * detector work is in flight; restore() into a pipeline built from the same
   * config continues as if never stopped.
   */
  snapshot(): PipelineSnapshot {
    return {
      v: 1,
      correlator: this.correlator.snapshot(),
      engine: this.engine.snapshot(),
      policy: this.policy.snapshot(),
      stats: structuredClone(this.stats),
      counters: structuredClone(this.counters),
    };
  }

  restore(s: PipelineSnapshot): void {
    this.correlator.restore(s.correlator);
    this.engine.restore(s.engine);
    this.policy.restore(s.policy);
    Object.assign(this.stats, s.stats);
    Object.assign(this.counters, s.counters);
  }

  /** Wait for async detector work (DNS lookups) so its findings are out. */
  drain(): Promise<void> {
    return this.engine.drain();
  }

  /** End of input: emit open messages, wait for async detector work. */
  async finish(): Promise<void> {
    this.correlator.flush();
    await this.engine.drain();
    this.stats.parserErrors = this.lines.parserErrors;
  }
}
