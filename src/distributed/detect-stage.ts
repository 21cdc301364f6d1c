/**
 * Stage B of `floodgate detect`: consumes the events topic (keyed by
 * entity), runs the detectors and the policy per partition, stores findings
 * and decisions in ClickHouse (and the stored copy of an event or message,
 * which only a parse stage without a sink leaves to it: see ParseStage) and
 * hands decisions to the exactly-once action runner.
 *
 * At-least-once with idempotent sinks: rows carry deterministic ids (a
 * replayed row collapses in ClickHouse), decisions are deduplicated by the
 * action lease. A checkpoint (every redis.snapshotIntervalMs) takes each
 * partition's offset and state as JSON, one partition at a time between
 * batches; then, while records go on being processed, it waits until
 * ClickHouse has every row up to there and the actions queued up to there
 * ran, commits those offsets and saves those states. After a crash, the new
 * owner restores that state and replays from its offset: nothing is lost,
 * nothing counted twice.
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
import { serializeState, type PartitionSnapshots, type SerializedState } from '../redis/snapshots.js';
import { DetectPartition, type DetectPartitionSnapshot } from './detect-partition.js';
import type { DistributedActions } from './distributed-actions.js';
import type { Logger } from './log.js';
import { PartitionHold, type PartitionHoldOptions } from './partition-hold.js';
import { seekBack } from './seek-back.js';
import { partitionFor } from './kafka.js';
import { decodeItems, encodeItems, type RoutedItem } from './wire.js';
import { Slices } from '../core/slices.js';
import { sleep, within } from '../core/within.js';

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
  /** Batches that began past a partition's state (a committed offset ahead of its checkpoint): sought back. */
  seeks: number;
  /** Times a partition was paused because its checkpoint could not be loaded (Redis away). */
  openHolds: number;
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
  /** Backoff of a partition whose checkpoint cannot be loaded (default DEFAULT_PARTITION_HOLD). */
  partitionHold?: PartitionHoldOptions;
  /** Called for every finding and decision (tests, metrics). */
  onFinding?: (f: Finding) => void;
  onDecision?: (d: Decision) => void;
  now?: () => number;
}

export class DetectStage {
  readonly metrics: DetectStageMetrics = { records: 0, items: 0, findings: 0, decisions: 0, badItems: 0, handOffs: 0, checkpoints: 0, checkpointFailures: 0, lastCheckpointMs: 0, restores: 0, seeks: 0, openHolds: 0, backpressureWaits: 0, lag: new Map() };
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
  /** Hand-offs ever queued / acknowledged by the broker (queued in order, sent in order): what a checkpoint waits for. */
  private handOffsQueued = 0;
  private handOffsAcked = 0;
  private handOffSendFailures = 0;
  /** The checkpoint in progress (one at a time; see startCheckpoint). */
  private checkpointRun: Promise<void> | undefined;
  private readonly producer: Producer;
  private readonly held: PartitionHold;

  constructor(o: DetectStageOptions) {
    this.o = o;
    this.now = o.now ?? Date.now;
    this.lastCheckpoint = this.now();
    this.groupId = `${o.cfg.kafka.groupId}-detect`;
    this.consumer = o.kafka.consumer({ groupId: this.groupId, sessionTimeout: 30_000, heartbeatInterval: 3000, maxWaitTimeInMs: 100, readUncommitted: false });
    this.producer = o.kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
    this.held = new PartitionHold(this.consumer, o.log, 'detect', o.partitionHold);
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
    // A fetch of nothing but transaction markers (or aborted records) never reaches eachBatch: kafkajs moves
    // its position past it on its own, and so must our state, or the next batch looks like a jump past it.
    this.consumer.on(this.consumer.events.END_BATCH_PROCESS, (e) => {
      const b = e.payload;
      if (b.batchSize !== 0 || b.topic !== this.o.cfg.kafka.topics.events) return;
      const ps = this.parts.get(b.partition);
      if (ps !== undefined) ps.next = pastFiltered(ps.next, b.firstOffset, b.lastOffset);
    });
    await this.consumer.run({ autoCommit: false, eachBatchAutoResolve: false, partitionsConsumedConcurrently: 1, eachBatch: (b) => this.exclusive(() => this.onBatch(b)) });
    // Checkpoints also happen when no records arrive, so the last rows and offsets of a burst are not held back.
    this.timer = setInterval(() => {
      if (this.dirty && this.now() - this.lastCheckpoint >= this.o.cfg.redis.snapshotIntervalMs) this.startCheckpoint();
    }, Math.max(100, Math.floor(this.o.cfg.redis.snapshotIntervalMs / 4)));
  }

  /** Final checkpoint, then leave the group. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.held.clear();
    await this.exclusive(() => this.consumer.stop().catch(() => undefined));
    while (this.checkpointRun !== undefined) await this.checkpointRun;
    await this.checkpoint();
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
    this.handOffsQueued++;
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
      .catch((e: unknown) => {
        this.handOffSendFailures++;
        this.o.log.warn({ stage: 'detect', err: (e as Error).message }, 'hand-offs not sent; retried with the next batch or at the checkpoint');
      })
      .finally(() => {
        this.handOffSend = undefined;
        if (ok) this.kickHandOffs();
      });
  }

  /**
   * The first `count` hand-offs ever queued acknowledged by the broker (a
   * checkpoint needs those before it commits offsets). Sends go one at a
   * time through kickHandOffs, in queue order, also while batches go on.
   */
  private async handOffsSent(count: number): Promise<void> {
    while (this.handOffsAcked < count) {
      const failures = this.handOffSendFailures;
      this.kickHandOffs();
      const send = this.handOffSend;
      if (send === undefined) throw new Error('hand-offs queued but none to send');
      await send;
      if (this.handOffSendFailures !== failures) throw new Error('hand-offs could not be sent');
    }
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
      this.handOffsAcked += batch.length;
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
      ps = await this.held.open(batch.topic, partition, () => this.open(partition, BigInt(first.offset)));
      this.metrics.openHolds = this.held.holds;
      if (ps === undefined) return; // held: Redis is away (see PartitionHold)
      this.parts.set(partition, ps);
    }
    // Where the fetch began, transaction markers and aborted records included (kafkajs hides them from messages).
    const fetchedFrom = BigInt(batch.firstOffset() ?? first.offset);
    // Past our state (at a committed offset ahead of our checkpoint): go back to it (see seekBack).
    if (fetchedFrom > ps.next) this.metrics.seeks++;
    const sought = seekBack(ps, fetchedFrom, (offset) => this.consumer.seek({ topic: batch.topic, partition, offset: String(offset) }));
    if (sought === 'seeking') return;
    if (sought === 'gap') ps.next = BigInt(first.offset);
    const sink = this.o.sink;
    const slices = new Slices(SLICE_MS);
    let whole = true;
    for (const msg of batch.messages) {
      if (!isRunning() || isStale()) {
        whole = false;
        break;
      }
      const off = BigInt(msg.offset);
      if (off < ps.next) {
        // Processed before (the fetch began at an older committed offset, as after kafkajs restarts a crashed
        // consumer): resolved all the same, or a batch wholly below ps.next is fetched again for ever.
        resolveOffset(msg.offset);
        continue;
      }
      while (sink.buffered >= this.o.cfg.clickhouse.maxBufferedRows) {
        this.metrics.backpressureWaits++;
        await Promise.race([sink.whenRoom(), sleep(1000)]);
        await heartbeat();
      }
      const items = decodeItems(msg.value ?? Buffer.alloc(0), (reason, line) => {
        this.metrics.badItems++;
        sink.add('dead_letters', [deadLetterRow(`kafka:${batch.topic}`, { partition, offset: msg.offset, line: line.slice(0, 2048) }, reason, this.now())]);
      });
      for (let i = 0; i < items.length; i++) {
        // Within a record too (a record holds up to 256 KiB of items): its offset is taken after the whole of it.
        if ((i & 63) === 63) await slices.maybeYield();
        const it = items[i]!;
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
    // Resolving the batch's last record resolves the transaction marker after it too (kafkajs): the next fetch
    // begins past the marker, and so does our state. Without this every batch after a parse transaction
    // looked like a jump past our state and cost a seek and four fetches.
    if (whole) ps.next = pastFiltered(ps.next, batch.firstOffset(), batch.lastOffset());
    this.metrics.lag.set(partition, Math.max(0, Number(BigInt(batch.highWatermark) - ps.next)));
    // Hand-offs go after each batch, not only at the checkpoint: a finding that crosses partitions (a
    // cleartext login judged in the IP's, reported in the account's) waited up to redis.snapshotIntervalMs
    // for it (p50 4.5 s against 1.3 s in the Kafka bench at 3,000 lines/s). The checkpoint, which must
    // have them sent before it commits, waits for them and retries a failed send.
    this.kickHandOffs();
    await heartbeat();
    if (this.now() - this.lastCheckpoint >= this.o.cfg.redis.snapshotIntervalMs) this.startCheckpoint();
  }

  /**
   * Start a checkpoint in the background unless one is running. Batches go
   * on meanwhile: waiting inside a batch for ClickHouse to store every row
   * (a few hundred ms to seconds per checkpoint) held all partitions, and
   * held back the findings of every line that arrived meanwhile.
   */
  private startCheckpoint(): void {
    if (this.checkpointRun !== undefined) return;
    this.checkpointRun = this.checkpoint().finally(() => {
      this.checkpointRun = undefined;
    });
  }

  /**
   * Offsets and states taken, partition by partition, each between two
   * batches; then the rows and actions up to there stored and done (while
   * batches go on), the offsets committed, the states saved. Not run
   * concurrently with itself (startCheckpoint, stop).
   */
  private async checkpoint(): Promise<void> {
    const t0 = this.now();
    this.lastCheckpoint = t0;
    if (!this.dirty) return;
    if (!this.o.snapshots.reachable() || this.o.sink.retrying) {
      // A checkpoint cannot complete without Redis (snapshots live there, queued actions wait for their
      // lease) nor while ClickHouse refuses rows. Skipped, this stage goes on; the sink's bounded buffer
      // pauses it, heartbeating, if ClickHouse stays away.
      this.metrics.checkpointFailures++;
      return;
    }
    this.dirty = false;
    try {
      const taken: { partition: number; offset: bigint; state: SerializedState | undefined; ps: PartState }[] = [];
      // Findings of DNS lookups in flight belong before the offsets taken next.
      await this.exclusive(async () => {
        for (const ps of this.parts.values()) await ps.dp.drain();
      });
      for (const partition of [...this.parts.keys()]) {
        // One partition per turn of the lock: serialising every partition's state at once held the event
        // loop (and the findings of lines waiting) for the sum of them.
        await this.exclusive(async () => {
          const ps = this.parts.get(partition);
          if (ps === undefined) return;
          taken.push({ partition, offset: ps.next, state: ps.saved === ps.next ? undefined : serializeState(partition, ps.dp.snapshot()), ps });
        });
      }
      // What everything fed before the offsets taken produced is in the action and hand-off queues now.
      const { acted, handOffs } = await this.exclusive(async () => ({ acted: this.o.actions.queuedSoFar(), handOffs: this.handOffsQueued }));
      await this.handOffsSent(handOffs);
      // Bounded, should Redis or ClickHouse go away during the checkpoint.
      await within(acted, CHECKPOINT_WAIT_MS, 'actions still running or waiting for Redis');
      // After the actions: their audit rows are among the rows this waits for (with those of later batches).
      await within(this.o.sink.flush(), CHECKPOINT_WAIT_MS, 'ClickHouse has not stored the rows yet');
      const topic = this.o.cfg.kafka.topics.events;
      if (taken.length > 0) await this.consumer.commitOffsets(taken.map((t) => ({ topic, partition: t.partition, offset: String(t.offset) })));
      for (const t of taken) {
        if (t.state === undefined) continue;
        const r = await this.o.snapshots.save(this.groupId, topic, t.partition, { offset: String(t.offset), state: t.state });
        if (r.saved && t.offset > t.ps.saved) t.ps.saved = t.offset;
      }
      await this.syncSite();
      this.metrics.checkpoints++;
      this.metrics.lastCheckpointMs = this.now() - t0;
    } catch (e) {
      this.dirty = true;
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

/** Longest a batch holds the event loop at a time (see Slices). */
const SLICE_MS = 20;

/** How long a checkpoint waits for queued actions, then for ClickHouse, before it gives up (and is retried). */
const CHECKPOINT_WAIT_MS = 10_000;

/**
 * The offset after a fetched batch whose records up to `next` were all
 * processed: its end when the batch began within our state (whatever it
 * holds past the last record is markers or aborted records), else `next`.
 */
export function pastFiltered(next: bigint, firstOffset: string | null, lastOffset: string): bigint {
  if (firstOffset === null || BigInt(firstOffset) > next) return next;
  const end = BigInt(lastOffset) + 1n;
  return end > next ? end : next;
}
