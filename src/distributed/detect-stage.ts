/**
 * Stage B of `floodgate detect`: consumes the events topic (keyed by
 * entity), runs the detectors and the policy per partition, stores events,
 * messages, findings and decisions in ClickHouse and hands decisions to the
 * exactly-once action runner.
 *
 * At-least-once with idempotent sinks: rows carry deterministic ids (a
 * replayed row collapses in ClickHouse), decisions are deduplicated by the
 * action lease. A checkpoint (every redis.snapshotIntervalMs) first waits
 * until ClickHouse has every row so far and the queued actions ran, then
 * commits the consumer offsets and saves each partition's state with the
 * offset it reflects. After a crash, the new owner restores that state and
 * replays from its offset: nothing is lost, nothing counted twice.
 *
 * Backpressure: while ClickHouse is down the sink buffers up to
 * clickhouse.maxBufferedRows, then this stage stops taking records (it keeps
 * heartbeating so the group does not evict it) until the sink has room.
 */
import { Partitioners, type Consumer, type EachBatchPayload, type Kafka, type Producer } from 'kafkajs';
import { deadLetterRow, decisionRow, eventRow, eventRowWithJson, findingRow, messageRow, messageRowWithJson } from '../clickhouse/rows.js';
import type { ClickhouseSink } from '../clickhouse/sink.js';
import type { FloodgateConfig } from '../config/config.js';
import type { DnsLookup } from '../detect/dns.js';
import type { HandOff } from '../detect/engine.js';
import { routeKey } from '../detect/route.js';
import type { Finding } from '../detect/finding.js';
import type { SiteKnowledge } from '../detect/site.js';
import type { Decision } from '../policy/policy.js';
import type { SharedSiteDomains } from '../redis/site.js';
import type { PartitionSnapshots } from '../redis/snapshots.js';
import { DetectPartition, type DetectPartitionSnapshot } from './detect-partition.js';
import type { DistributedActions } from './distributed-actions.js';
import type { Logger } from './log.js';
import { partitionFor } from './kafka.js';
import { decodeItems, encodeItems, type RoutedItem } from './wire.js';

export interface DetectStageMetrics {
  records: number;
  items: number;
  findings: number;
  decisions: number;
  badItems: number;
  handOffs: number;
  checkpoints: number;
  checkpointFailures: number;
  lastCheckpointMs: number;
  restores: number;
  backpressureWaits: number;
  /** Per partition: the last offset processed and the high watermark seen (lag = high - next). */
  lag: Map<number, number>;
}

interface PartState {
  dp: DetectPartition;
  next: bigint;
  seekTo: bigint | undefined;
  staleBatches: number;
  /** Offset of the last saved snapshot (nothing to save when unchanged). */
  saved: bigint;
}

export interface DetectStageOptions {
  cfg: FloodgateConfig;
  kafka: Kafka;
  snapshots: PartitionSnapshots;
  sink: ClickhouseSink;
  actions: DistributedActions;
  site: SiteKnowledge;
  sharedSite: SharedSiteDomains;
  log: Logger;
  /** Partitions of the events topic (hand-offs are addressed to one). */
  eventPartitions: number;
  dns?: DnsLookup;
  /** Called for every finding and decision (tests, metrics). */
  onFinding?: (f: Finding) => void;
  onDecision?: (d: Decision) => void;
  now?: () => number;
}

export class DetectStage {
  readonly metrics: DetectStageMetrics = { records: 0, items: 0, findings: 0, decisions: 0, badItems: 0, handOffs: 0, checkpoints: 0, checkpointFailures: 0, lastCheckpointMs: 0, restores: 0, backpressureWaits: 0, lag: new Map() };
  private readonly o: DetectStageOptions;
  private readonly consumer: Consumer;
  private readonly groupId: string;
  private readonly parts = new Map<number, PartState>();
  private readonly now: () => number;
  private lastCheckpoint: number;
  private lock: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private dirty = false;
  private outgoing: { partition: number; item: RoutedItem }[] = [];
  /** The hand-off send in flight, if any (see kickHandOffs). */
  private handOffSend: Promise<void> | undefined;
  private readonly producer: Producer;

  constructor(o: DetectStageOptions) {
    this.o = o;
    this.now = o.now ?? Date.now;
    this.lastCheckpoint = this.now();
    this.groupId = `${o.cfg.kafka.groupId}-detect`;
    this.consumer = o.kafka.consumer({ groupId: this.groupId, sessionTimeout: 30_000, heartbeatInterval: 3000, maxWaitTimeInMs: 100, readUncommitted: false });
    this.producer = o.kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
  }

  async start(): Promise<void> {
    await this.loadSharedSite();
    await this.producer.connect();
    await this.consumer.connect();
    await this.consumer.subscribe({ topic: this.o.cfg.kafka.topics.events, fromBeginning: true });
    this.consumer.on(this.consumer.events.GROUP_JOIN, (e) => {
      const mine = new Set(e.payload.memberAssignment[this.o.cfg.kafka.topics.events] ?? []);
      for (const p of [...this.parts.keys()]) {
        if (!mine.has(p)) {
          this.parts.delete(p);
          this.metrics.lag.delete(p);
        }
      }
      this.o.log.info({ stage: 'detect', partitions: [...mine] }, 'partitions assigned');
    });
    await this.consumer.run({ autoCommit: false, eachBatchAutoResolve: false, partitionsConsumedConcurrently: 1, eachBatch: (b) => this.exclusive(() => this.onBatch(b)) });
    // Checkpoints also happen when no records arrive, so the last rows and offsets of a burst are not held back.
    this.timer = setInterval(() => {
      if (this.dirty && this.now() - this.lastCheckpoint >= this.o.cfg.redis.snapshotIntervalMs) void this.exclusive(() => this.checkpoint());
    }, Math.max(100, Math.floor(this.o.cfg.redis.snapshotIntervalMs / 4)));
  }

  /** Final checkpoint, then leave the group. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.exclusive(async () => {
      await this.consumer.stop().catch(() => undefined);
      await this.checkpoint();
    });
    await this.consumer.disconnect().catch(() => undefined);
    await this.producer.disconnect().catch(() => undefined);
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn);
    this.lock = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private async open(partition: number, firstOffset: bigint): Promise<PartState> {
    const dp = this.partition(partition);
    const snap = await this.o.snapshots.load(this.groupId, this.o.cfg.kafka.topics.events, partition);
    let next = firstOffset;
    if (snap !== undefined) {
      dp.restore(snap.state as DetectPartitionSnapshot);
      next = BigInt(snap.offset);
      this.metrics.restores++;
    }
    this.o.log.info({ stage: 'detect', partition, from: String(next), committed: String(firstOffset), restored: snap !== undefined }, 'partition opened');
    return { dp, next, seekTo: undefined, staleBatches: 0, saved: next };
  }

  /**
   * A hand-off for this partition is delivered at once (the order standalone
   * has); one for another partition is produced to it and delivered when that
   * partition reads it. Produced at least once: a replayed partition sends
   * its hand-offs again, and the receiving detectors' cooldowns absorb them.
   */
  private handOff(from: number, h: HandOff): void {
    this.metrics.handOffs++;
    const to = partitionFor(routeKey(h.route), this.o.eventPartitions);
    if (to === from) {
      const ps = this.parts.get(from);
      if (ps) {
        ps.dp.engine.onHandOff(h);
        return;
      }
    }
    this.outgoing.push({ partition: to, item: { route: h.route, primary: false, handOff: { detector: h.detector, data: h.data } } });
  }

  /**
   * Start sending the queued hand-offs unless a send is in flight; that one
   * starts the next when it succeeds. Not awaited by the batch: a produce
   * round trip per partition batch held the stage (and every partition after
   * it) for the broker's acknowledgement. A failed send keeps its hand-offs
   * queued for the next batch or the checkpoint.
   */
  private kickHandOffs(): void {
    if (this.handOffSend !== undefined || this.outgoing.length === 0) return;
    let ok = false;
    this.handOffSend = this.sendHandOffs()
      .then(() => void (ok = true))
      .catch((e: unknown) => this.o.log.warn({ stage: 'detect', err: (e as Error).message }, 'hand-offs not sent; retried with the next batch or at the checkpoint'))
      .finally(() => {
        this.handOffSend = undefined;
        if (ok) this.kickHandOffs();
      });
  }

  /** Every hand-off queued so far acknowledged by the broker (a checkpoint needs that before it commits offsets). */
  private async handOffsSent(): Promise<void> {
    while (this.handOffSend !== undefined) await this.handOffSend;
    await this.sendHandOffs();
  }

  /** Produce buffered hand-offs. */
  private async sendHandOffs(): Promise<void> {
    if (this.outgoing.length === 0) return;
    const batch = this.outgoing;
    this.outgoing = [];
    const byPartition = new Map<number, RoutedItem[]>();
    for (const o of batch) {
      const list = byPartition.get(o.partition) ?? [];
      list.push(o.item);
      byPartition.set(o.partition, list);
    }
    try {
      await this.producer.send({
        topic: this.o.cfg.kafka.topics.events,
        acks: -1,
        messages: [...byPartition].flatMap(([partition, items]) => encodeItems(items).map((value) => ({ partition, value }))),
      });
    } catch (e) {
      this.outgoing = batch.concat(this.outgoing);
      throw e;
    }
  }

  private partition(partition: number): DetectPartition {
    return new DetectPartition(
      this.o.cfg,
      this.o.site,
      {
        onHandOff: (h) => this.handOff(partition, h),
        onFinding: (f) => {
          this.metrics.findings++;
          this.o.sink.add('findings', [findingRow(f)]);
          this.o.onFinding?.(f);
        },
        onDecision: (d) => {
          this.metrics.decisions++;
          this.o.sink.add('decisions', [decisionRow(d)]);
          this.o.onDecision?.(d);
          this.o.actions.submit(d);
        },
      },
      this.o.dns,
    );
  }

  private async onBatch({ batch, heartbeat, isRunning, isStale, resolveOffset }: EachBatchPayload): Promise<void> {
    const partition = batch.partition;
    const first = batch.messages[0];
    if (first === undefined) return;
    let ps = this.parts.get(partition);
    if (ps === undefined) {
      ps = await this.open(partition, BigInt(first.offset));
      this.parts.set(partition, ps);
    }
    if (BigInt(first.offset) > ps.next) {
      // Transaction markers leave gaps in this topic's offsets; only a jump past our state needs the seek.
      if (ps.seekTo !== ps.next) {
        ps.seekTo = ps.next;
        ps.staleBatches = 0;
        this.consumer.seek({ topic: batch.topic, partition, offset: String(ps.next) });
        return;
      }
      if (++ps.staleBatches <= 3) return;
      ps.next = BigInt(first.offset);
    }
    ps.seekTo = undefined;
    const sink = this.o.sink;
    for (const msg of batch.messages) {
      if (!isRunning() || isStale()) break;
      const off = BigInt(msg.offset);
      if (off < ps.next) continue;
      while (sink.buffered >= this.o.cfg.clickhouse.maxBufferedRows) {
        this.metrics.backpressureWaits++;
        await Promise.race([sink.whenRoom(), sleep(1000)]);
        await heartbeat();
      }
      const items = decodeItems(msg.value ?? Buffer.alloc(0), (reason, line) => {
        this.metrics.badItems++;
        sink.add('dead_letters', [deadLetterRow(`kafka:${batch.topic}`, { partition, offset: msg.offset, line: line.slice(0, 2048) }, reason, this.now())]);
      });
      for (const it of items) {
        if (it.primary) {
          if (it.event) sink.add('events', [it.json === undefined ? eventRow(it.event, it.n ?? 0) : eventRowWithJson(it.event, it.n ?? 0, it.json)]);
          else if (it.message) sink.add('messages', [it.json === undefined ? messageRow(it.message) : messageRowWithJson(it.message, it.json)]);
        }
        ps.dp.feed(it);
      }
      this.metrics.items += items.length;
      this.metrics.records++;
      ps.next = off + 1n;
      resolveOffset(msg.offset);
      this.dirty = true;
    }
    this.metrics.lag.set(partition, Math.max(0, Number(BigInt(batch.highWatermark) - ps.next)));
    // Hand-offs go after each batch, not only at the checkpoint: a finding that crosses partitions (a
    // cleartext login judged in the IP's, reported in the account's) waited up to redis.snapshotIntervalMs
    // for it (p50 4.5 s against 1.3 s in the Kafka bench at 3,000 lines/s). The checkpoint, which must
    // have them sent before it commits, waits for them and retries a failed send.
    this.kickHandOffs();
    await heartbeat();
    if (this.now() - this.lastCheckpoint >= this.o.cfg.redis.snapshotIntervalMs) await this.checkpoint();
  }

  /** Rows stored and actions done up to here, then offsets committed, then state saved with those offsets. */
  private async checkpoint(): Promise<void> {
    const t0 = this.now();
    this.lastCheckpoint = t0;
    if (!this.dirty) return;
    if (!this.o.snapshots.reachable() || this.o.sink.retrying) {
      // A checkpoint cannot complete without Redis (snapshots live there, queued actions wait for their
      // lease) nor while ClickHouse refuses rows. Waiting for it inside a batch froze this stage for the
      // whole outage: no detection, no lock, and no heartbeat (past the session timeout the group evicts
      // it). Skipped, this stage goes on; the sink's bounded buffer pauses it, heartbeating, if ClickHouse
      // stays away.
      this.metrics.checkpointFailures++;
      return;
    }
    try {
      for (const ps of this.parts.values()) await ps.dp.drain();
      await this.handOffsSent();
      // Bounded for the same reason, should Redis or ClickHouse go away during the checkpoint.
      await within(this.o.actions.idle(), CHECKPOINT_WAIT_MS, 'actions still running or waiting for Redis');
      await within(this.o.sink.flush(), CHECKPOINT_WAIT_MS, 'ClickHouse has not stored the rows yet');
      const topic = this.o.cfg.kafka.topics.events;
      const parts = [...this.parts];
      if (parts.length > 0) await this.consumer.commitOffsets(parts.map(([partition, ps]) => ({ topic, partition, offset: String(ps.next) })));
      for (const [partition, ps] of parts) {
        if (ps.saved === ps.next) continue;
        const r = await this.o.snapshots.save(this.groupId, topic, partition, { offset: String(ps.next), state: ps.dp.snapshot() });
        if (r.saved) ps.saved = ps.next;
      }
      await this.syncSite();
      this.dirty = false;
      this.metrics.checkpoints++;
      this.metrics.lastCheckpointMs = this.now() - t0;
    } catch (e) {
      this.metrics.checkpointFailures++;
      this.o.log.warn({ stage: 'detect', err: (e as Error).message }, 'checkpoint failed; will retry');
    }
  }

  private async loadSharedSite(): Promise<void> {
    try {
      const shared = await this.o.sharedSite.all();
      if (shared.length > 0) this.o.site.restore({ learnt: [...new Set([...this.o.site.learntDomains(), ...shared])] });
    } catch (e) {
      this.o.log.warn({ err: (e as Error).message }, 'cannot read shared site knowledge; learning from the logs alone');
    }
  }

  private async syncSite(): Promise<void> {
    await this.o.sharedSite.add(this.o.site.learntDomains());
    await this.loadSharedSite();
  }
}

/** How long a checkpoint waits for queued actions, then for ClickHouse, before it gives up (and is retried). */
const CHECKPOINT_WAIT_MS = 10_000;

/** Rejects when `p` has not settled within ms (p's own outcome is then ignored). */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  p.catch(() => undefined);
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} after ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
