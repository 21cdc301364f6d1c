/**
 * One `floodgate detect` worker, assembled from the config: Kafka topics,
 * Redis (checkpoints, action leases, shared locks and budget, site
 * knowledge), ClickHouse (migrations, sink), then the two stages. Used by
 * the CLI, the tests and the bench alike, so they run the same thing.
 */
import { hostname } from 'node:os';
import type { Kafka } from 'kafkajs';
import type { Redis } from 'ioredis';
import type { MetricFamily } from '../api/metrics.js';
import { createActionRunner } from '../cli/actions-hook.js';
import { createClickhouseClient, type ChClient } from '../clickhouse/client.js';
import { migrate } from '../clickhouse/migrations.js';
import { ClickhouseQueries } from '../clickhouse/queries.js';
import { ClickhouseSink, flushWithin } from '../clickhouse/sink.js';
import type { FloodgateConfig } from '../config/config.js';
import type { DnsLookup } from '../detect/dns.js';
import type { Finding } from '../detect/finding.js';
import { SiteKnowledge } from '../detect/site.js';
import type { ZoneClock } from '../envelope/zone.js';
import type { Decision } from '../policy/policy.js';
import { HOLD_LOOKBACK_MS, type CommandRunner } from '../actions/index.js';
import { ActionLease } from '../redis/action-lease.js';
import { connectRedis, redisHealth } from '../redis/connection.js';
import { LockBudget, SharedLockState } from '../redis/locks.js';
import { SharedSiteDomains } from '../redis/site.js';
import { PartitionSnapshots } from '../redis/snapshots.js';
import { DetectStage } from './detect-stage.js';
import { DistributedActions } from './distributed-actions.js';
import { createKafka, ensureTopics } from './kafka.js';
import type { Logger } from './log.js';
import { counter, gauge } from './metrics-server.js';
import { ParseStage } from './parse-stage.js';

export interface WorkerOptions {
  cfg: FloodgateConfig;
  zone: ZoneClock;
  log: Logger;
  workerId?: string;
  stages?: { parse: boolean; detect: boolean };
  dns?: DnsLookup;
  /** Stand-in for zmprov/postqueue in tests. */
  runner?: CommandRunner;
  fetch?: typeof fetch;
  onFinding?: (f: Finding) => void;
  onDecision?: (d: Decision) => void;
}

export class DetectWorker {
  readonly workerId: string;
  readonly kafka: Kafka;
  readonly redis: Redis;
  readonly clickhouse: ChClient;
  readonly sink: ClickhouseSink;
  readonly actions: DistributedActions;
  readonly snapshots: PartitionSnapshots;
  parse: ParseStage | undefined;
  detect: DetectStage | undefined;
  private readonly o: WorkerOptions;

  constructor(o: WorkerOptions) {
    this.o = o;
    const cfg = o.cfg;
    this.workerId = o.workerId ?? hostname();
    this.kafka = createKafka(cfg.kafka, o.log);
    this.redis = connectRedis(cfg.redis, { logger: o.log, connectionName: `floodgate-detect-${this.workerId}` });
    this.clickhouse = createClickhouseClient(cfg.clickhouse);
    this.sink = new ClickhouseSink(this.clickhouse, {
      batchRows: cfg.clickhouse.batchRows,
      flushMs: cfg.clickhouse.flushMs,
      tableFlushMs: { findings: cfg.clickhouse.urgentFlushMs, decisions: cfg.clickhouse.urgentFlushMs, actions: cfg.clickhouse.urgentFlushMs },
      maxBufferedRows: cfg.clickhouse.maxBufferedRows,
      log: (level, msg, fields) => o.log[level]({ component: 'clickhouse', ...fields }, msg),
    });
    this.snapshots = new PartitionSnapshots(this.redis, cfg.redis.keyPrefix);
    // The account's queue ids live in the parse stage's correlators, partitioned by host, not by account: read them from the
    // stored events. This worker's parse stage adds a line's rows to the sink before routing its items, so after a flush the
    // rows behind the decision are there (for the hosts it parses; a flush ClickHouse does not take within 2 s is not awaited).
    const queries = new ClickhouseQueries(this.clickhouse);
    const hook = createActionRunner(cfg, () => undefined, {
      ...(o.runner ? { runner: o.runner } : {}),
      ...(o.fetch ? { fetch: o.fetch } : {}),
      queuedMailOf: async (account, at) => {
        await flushWithin(this.sink, 2000);
        return queries.queuedMailOf(account, (at ?? Date.now()) - HOLD_LOOKBACK_MS);
      },
    });
    this.actions = new DistributedActions({
      hook,
      lease: new ActionLease(this.redis, cfg.redis.keyPrefix),
      locks: new SharedLockState(this.redis, cfg.redis.keyPrefix),
      budget: new LockBudget(this.redis, cfg.redis.keyPrefix),
      sink: this.sink,
      log: o.log,
      workerId: this.workerId,
      lockBudgetPerHour: cfg.policy.lockBudgetPerHour,
    });
  }

  async start(): Promise<void> {
    const { cfg, log } = this.o;
    const stages = this.o.stages ?? { parse: true, detect: true };
    const admin = this.kafka.admin();
    await admin.connect();
    let partitions: Map<string, number>;
    try {
      partitions = await ensureTopics(admin, cfg.kafka, log);
    } finally {
      await admin.disconnect();
    }
    // Both stages store rows (the parse stage its events and messages).
    const m = await migrate(this.clickhouse, cfg.clickhouse, { log: (msg, fields) => log.info({ component: 'clickhouse', ...fields }, msg) });
    log.info({ clickhouse: m.server, schema: m.version, applied: m.applied }, 'clickhouse ready');
    if (stages.parse) {
      this.parse = new ParseStage({ cfg, kafka: this.kafka, snapshots: this.snapshots, sink: this.sink, zone: this.o.zone, log, workerId: this.workerId, eventPartitions: partitions.get(cfg.kafka.topics.events) ?? cfg.kafka.partitions });
      await this.parse.start();
    }
    if (stages.detect) {
      this.detect = new DetectStage({
        cfg,
        kafka: this.kafka,
        snapshots: this.snapshots,
        sink: this.sink,
        actions: this.actions,
        site: new SiteKnowledge(cfg.site),
        sharedSite: new SharedSiteDomains(this.redis, cfg.redis.keyPrefix),
        log,
        eventPartitions: partitions.get(cfg.kafka.topics.events) ?? cfg.kafka.partitions,
        ...(this.o.dns ? { dns: this.o.dns } : {}),
        ...(this.o.onFinding ? { onFinding: this.o.onFinding } : {}),
        ...(this.o.onDecision ? { onDecision: this.o.onDecision } : {}),
      });
      await this.detect.start();
    }
  }

  async stop(): Promise<void> {
    await this.parse?.stop();
    await this.detect?.stop();
    // An action still waiting for Redis would keep the process alive; its decision is replayed by the next owner.
    this.actions.close();
    await this.sink.close().catch(() => undefined);
    await this.clickhouse.close().catch(() => undefined);
    this.redis.disconnect();
  }

  async health(): Promise<{ ok: boolean } & Record<string, unknown>> {
    const redis = await redisHealth(this.redis);
    const sink = this.sink.status();
    return { ok: redis.ok, worker: this.workerId, redis, clickhouse: sink };
  }

  metrics(): MetricFamily[] {
    const out: MetricFamily[] = [];
    const p = this.parse?.metrics;
    if (p) {
      out.push(counter('floodgate_parse_records_total', 'Line chunks consumed from the lines topic', p.records));
      out.push(counter('floodgate_parse_lines_total', 'Log lines parsed', p.lines));
      out.push(counter('floodgate_parse_items_total', 'Events and messages produced to the events topic (one per route)', p.items));
      out.push(counter('floodgate_parse_rows_total', 'Event and message rows the parse stage handed to ClickHouse (silent re-reads included)', p.rows));
      out.push(counter('floodgate_parse_stored_only_events_total', 'Events stored but not sent to the detect stage: no detector reads them', p.storedOnly));
      out.push(counter('floodgate_parse_backpressure_waits_total', 'Times the parse stage waited for ClickHouse to take rows', p.backpressureWaits));
      out.push(counter('floodgate_parse_eager_opens_total', 'Partitions opened on assignment to re-store rows a previous owner did not store', p.eagerOpens));
      out.push(counter('floodgate_parse_lookbacks_total', 'Partitions opened without a checkpoint that re-read from before their stored offset to rebuild open messages', p.lookbacks));
      out.push(counter('floodgate_parse_duplicate_lines_total', 'Lines dropped because the shipper sent them twice', p.duplicateLines));
      out.push(counter('floodgate_parse_malformed_lines_total', 'Lines without a recognisable envelope', p.malformedLines));
      out.push(counter('floodgate_dead_lettered_total', 'Records and line samples sent to the dead-letter topic', p.deadLettered));
      out.push(counter('floodgate_parse_transactions_total', 'Kafka transactions committed by the parse stage', p.transactions));
      out.push(counter('floodgate_parse_transaction_seconds_total', 'Time the parse stage spent in its Kafka transactions (sending items and offsets, committing)', p.transactionMs / 1000));
      out.push(counter('floodgate_parse_transaction_failures_total', 'Kafka transactions that failed (partition rebuilt from its checkpoint)', p.transactionFailures));
      out.push(counter('floodgate_parse_partition_holds_total', 'Times a lines partition was paused because its checkpoint could not be loaded (Redis away)', p.openHolds));
      out.push(gauge('floodgate_parse_last_batch_lines', 'Lines in the last batch the parse stage committed', p.lastBatchLines));
    }
    const d = this.detect?.metrics;
    if (d) {
      out.push(counter('floodgate_detect_records_total', 'Records consumed from the events topic', d.records));
      out.push(counter('floodgate_detect_items_total', 'Events and messages fed to the detectors', d.items));
      out.push(counter('floodgate_findings_total', 'Findings', d.findings));
      out.push(counter('floodgate_decisions_total', 'Policy decisions', d.decisions));
      out.push(counter('floodgate_detect_hand_offs_total', 'Detector hand-offs to the partition owning another entity (e.g. a listed IP logging in, to its account)', d.handOffs));
      out.push(counter('floodgate_detect_bad_items_total', 'Items on the events topic that could not be decoded (dead-lettered)', d.badItems));
      out.push(counter('floodgate_checkpoints_total', 'Detect checkpoints (rows stored, offsets committed, state saved)', d.checkpoints));
      out.push(counter('floodgate_checkpoint_failures_total', 'Detect checkpoints that failed and were retried', d.checkpointFailures));
      out.push(counter('floodgate_detect_seeks_total', 'Events batches that began past a partition\'s state (a committed offset ahead of its checkpoint) and were sought back', d.seeks));
      out.push(counter('floodgate_detect_partition_holds_total', 'Times an events partition was paused because its checkpoint could not be loaded (Redis away)', d.openHolds));
      out.push(counter('floodgate_backpressure_waits_total', 'Times the detect stage waited for ClickHouse to take rows', d.backpressureWaits));
      out.push({ name: 'floodgate_consumer_lag', help: 'Records behind the high watermark, per events-topic partition', type: 'gauge', samples: [...d.lag].map(([partition, value]) => ({ labels: { partition: String(partition) }, value })) });
    }
    const a = this.actions.metrics;
    out.push({
      name: 'floodgate_distributed_actions_total',
      help: 'Decisions handled by the action runner, by outcome',
      type: 'counter',
      samples: [
        { labels: { outcome: 'executed' }, value: a.executed },
        { labels: { outcome: 'duplicate' }, value: a.skippedDuplicate },
        { labels: { outcome: 'already-locked' }, value: a.skippedAlreadyLocked },
        { labels: { outcome: 'budget-downgrade' }, value: a.budgetDowngrades },
        { labels: { outcome: 'failed' }, value: a.failures },
      ],
    });
    out.push(...this.sink.metricFamilies());
    return out;
  }
}
