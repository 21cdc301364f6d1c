/**
 * Stage A of `floodgate detect`: consumes the lines topic (keyed by host),
 * parses and correlates per partition, and re-keys the events and correlated
 * messages by entity onto the events topic, so that each account's and each
 * IP's windows live in one worker of stage B.
 *
 * Exactly once into the events topic: the items of a batch, its dead-letter
 * samples and the consumer offset are committed in one Kafka transaction.
 * The parse state (correlator, envelope contexts) is checkpointed to Redis
 * right after a commit, with the offset it reflects. A partition that moves
 * to this worker (rebalance, or a restart after kill -9) is restored from its
 * checkpoint and the records between the checkpoint and the committed offset
 * are parsed again silently: they rebuild open messages but their items were
 * already committed, so they are not produced twice.
 *
 * With a ClickHouse sink (what `floodgate detect` gives it) this stage also
 * stores the rows of every event and message it parses, and routes to the
 * detect stage only what detection may act on (detectionReads: the kinds
 * detectors take, narrowed by their `reads` tests): on the bench's mail log
 * 80% of the events (queue and connection bookkeeping, relayed deliveries,
 * inbound mail's smtpd and postscreen lines) no longer cross Kafka twice:
 * 659,573 items for the detect stage, against 1,114,039 when whole kinds
 * went. At least once into ClickHouse, idempotent
 * rows: a checkpoint is saved only after the sink stored every row of the
 * records before it, and the offset up to which rows are stored is
 * committed, within each transaction, for a second group
 * (`<groupId>-parse-stored`). A partition restored from a checkpoint, or
 * without one from that offset, parses silently up to the committed offset
 * and stores those rows again (the same ids: they collapse). Without a
 * checkpoint the messages open at the stored offset began before it, so the
 * re-read starts up to the correlator's idle timeout earlier (by the records'
 * timestamps, see lookBack) and stores nothing below the stored offset.
 */
import { CompressionTypes, Partitioners, type Admin, type Consumer, type EachBatchPayload, type Kafka, type KafkaMessage, type PartitionOffset, type Producer } from 'kafkajs';
import type { FloodgateConfig } from '../config/config.js';
import type { ZoneClock } from '../envelope/zone.js';
import type { PartitionSnapshots } from '../redis/snapshots.js';
import { partitionFor } from './kafka.js';
import type { Logger } from './log.js';
import { PartitionHold, type PartitionHoldOptions } from './partition-hold.js';
import { seekBack } from './seek-back.js';
import { ParsePartition, type ParsePartitionSnapshot } from './parse-partition.js';
import { routeKey } from '../detect/route.js';
import { decodeChunk, encodeItems, requestsWithin, type RoutedItem } from './wire.js';
import { Slices } from '../core/slices.js';
import { sleep, within } from '../core/within.js';
import type { ClickhouseSink } from '../clickhouse/sink.js';
import type { Event } from '../core/events.js';
import { detectionReads } from '../detect/engine.js';
import { serializeState } from '../redis/snapshots.js';

export interface ParseStageMetrics {
  records: number;
  lines: number;
  items: number;
  duplicateLines: number;
  malformedLines: number;
  deadLettered: number;
  transactions: number;
  transactionFailures: number;
  silentRecords: number;
  restores: number;
  /** Times a partition was paused because its checkpoint could not be loaded (Redis away). */
  openHolds: number;
  snapshots: number;
  lastBatchLines: number;
  /** Rows handed to ClickHouse (events and messages; silent re-reads included). */
  rows: number;
  /** Events stored but not routed: no detector reads them. */
  storedOnly: number;
  backpressureWaits: number;
  /** Partitions opened on assignment, not by a batch, to re-store rows a crashed owner lost (see openEagerly). */
  eagerOpens: number;
  /** Partitions opened without a checkpoint that re-read from before their stored offset to rebuild open messages (see lookBack). */
  lookbacks: number;
  /**
   * Wall time in transactions (items, offsets, commit), in ms: the partition
   * parses nothing meanwhile. On the bench's Kafka path 8 of 58 s (12-07c).
   */
  transactionMs: number;
}

interface PartState {
  st: ParsePartition;
  /** Next offset to process. */
  next: bigint;
  /** Records below this offset were already committed by an earlier owner: rebuild state, produce nothing. */
  silentUntil: bigint;
  /** Set while waiting for a seek to take effect. */
  seekTo: bigint | undefined;
  staleBatches: number;
  lastSnapshotAt: number;
  snapshotOffset: bigint;
  /** Rows of records below this offset are stored in ClickHouse (with a sink). */
  stored: bigint;
  /**
   * The broker's timestamp of the record before `stored`: committed with it,
   * where a re-read without a checkpoint looks back from. Until this owner's
   * first checkpoint it is that of the stored offset committed before, which
   * can be older: an earlier time only makes a look-back re-read longer.
   */
  storedTs: number | undefined;
  /** The broker's timestamp of the record before `next`. */
  lastTs: number | undefined;
  /** Rows of records below this offset were stored by an earlier owner: a look-back re-read (see lookBack) stores none of them. */
  storeFrom: bigint;
  /** `stored` as last committed for the stored group. */
  storedCommitted: bigint;
  /**
   * Opened without a checkpoint, past the partition's first record and
   * without looking back (or a gap skipped records): messages rebuilt by a
   * silent re-read may miss their start and are not stored. A re-read from
   * offset 0 has their lines, and so does one that looked back, but for a
   * message that went on for longer than the look-back (stored incomplete).
   */
  partial: boolean;
  /** The checkpoint being stored and saved in the background, if any. */
  checkpointRun: Promise<void> | undefined;
}

export interface ParseStageOptions {
  cfg: FloodgateConfig;
  kafka: Kafka;
  snapshots: PartitionSnapshots;
  zone: ZoneClock;
  log: Logger;
  /** Stable per worker: the transactional id derives from it, so a restarted worker fences its dead predecessor at once. */
  workerId: string;
  eventPartitions: number;
  /** Store events and messages here (see the file's comment); without one, the detect stage stores the items' first copies. */
  sink?: ClickhouseSink;
  /** Most bytes of lines records taken per partition and fetch (default 256 KiB; a record bigger than that still comes whole). */
  fetchBytesPerPartition?: number;
  /** Backoff of a partition whose checkpoint cannot be loaded (default DEFAULT_PARTITION_HOLD). */
  partitionHold?: PartitionHoldOptions;
  now?: () => number;
}

export class ParseStage {
  readonly metrics: ParseStageMetrics = { records: 0, lines: 0, items: 0, duplicateLines: 0, malformedLines: 0, deadLettered: 0, transactions: 0, transactionFailures: 0, silentRecords: 0, restores: 0, openHolds: 0, snapshots: 0, lastBatchLines: 0, rows: 0, storedOnly: 0, backpressureWaits: 0, eagerOpens: 0, lookbacks: 0, transactionMs: 0 };
  private readonly o: ParseStageOptions;
  private readonly consumer: Consumer;
  private producer: Producer;
  /** The producer's last transaction failed: replace it before the next (see renewProducer). */
  private producerStale = false;
  /** Reads the group's committed offsets when a partition opens. */
  private readonly admin: Admin;
  private readonly groupId: string;
  /** The group whose committed offsets say up to where ClickHouse holds this stage's rows (never consumes). */
  private readonly storedGroupId: string;
  private readonly reads: ((e: Event) => boolean) | undefined;
  private readonly parts = new Map<number, PartState>();
  /** Opens in progress (first batch or eager open, whichever asks first; see openPartition). */
  private readonly opening = new Map<number, Promise<PartState | undefined>>();
  /** The lines partitions assigned to this worker by the last rebalance. */
  private assigned = new Set<number>();
  private running = false;
  private readonly now: () => number;
  private readonly partitionCache = new Map<string, number>();
  private readonly held: PartitionHold;

  constructor(o: ParseStageOptions) {
    this.o = o;
    this.now = o.now ?? Date.now;
    this.groupId = `${o.cfg.kafka.groupId}-parse`;
    this.storedGroupId = `${this.groupId}-stored`;
    this.reads = o.sink !== undefined ? detectionReads(o.cfg.enabledDetectors) : undefined;
    this.consumer = o.kafka.consumer({
      groupId: this.groupId,
      sessionTimeout: 30_000,
      heartbeatInterval: 3000,
      // A batch is parsed without yielding, and the detect stage shares this event loop: 8 MiB of gzipped lines
      // (some 300,000) held it for seconds. 256 KiB is about 10,000 lines, a few hundred ms at most.
      maxBytesPerPartition: o.fetchBytesPerPartition ?? 256 << 10,
      // Each batch is a transaction (several requests and a marker per partition written by the broker): at a
      // steady trickle a fetch per shipper send made dozens a second, a good part of the broker's CPU. The
      // broker holds the fetch until FETCH_MIN_BYTES are there or kafka.linesFetchWaitMs passed.
      minBytes: FETCH_MIN_BYTES,
      maxWaitTimeInMs: o.cfg.kafka.linesFetchWaitMs,
      readUncommitted: false,
    });
    this.producer = this.createProducer();
    this.admin = o.kafka.admin();
    this.held = new PartitionHold(this.consumer, o.log, 'parse', o.partitionHold);
  }

  private createProducer(): Producer {
    return this.o.kafka.producer({
      transactionalId: `${this.o.cfg.kafka.groupId}-parse-${this.o.workerId}`,
      idempotent: true,
      maxInFlightRequests: 1,
      transactionTimeout: 30_000,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
  }

  async start(): Promise<void> {
    await this.producer.connect();
    await this.admin.connect();
    await this.consumer.connect();
    await this.consumer.subscribe({ topic: this.o.cfg.kafka.topics.lines, fromBeginning: true });
    this.running = true;
    this.consumer.on(this.consumer.events.GROUP_JOIN, (e) => {
      const topic = this.o.cfg.kafka.topics.lines;
      const mine = new Set(e.payload.memberAssignment[topic] ?? []);
      this.assigned = mine;
      for (const p of [...this.parts.keys()]) if (!mine.has(p)) this.parts.delete(p);
      this.o.log.info({ stage: 'parse', partitions: [...mine] }, 'partitions assigned');
      for (const p of mine) if (!this.parts.has(p)) void this.openEagerly(topic, p);
    });
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 1,
      eachBatch: (b) => this.onBatch(b),
    });
  }

  async stop(): Promise<void> {
    this.running = false;
    this.held.clear();
    await this.consumer.stop().catch(() => undefined);
    // A checkpoint in flight finishes (bounded by its own wait): its rows and its state are worth keeping.
    await Promise.all([...this.parts.values()].map((ps) => ps.checkpointRun));
    await this.consumer.disconnect().catch(() => undefined);
    await this.producer.disconnect().catch(() => undefined);
    await this.admin.disconnect().catch(() => undefined);
  }

  /**
   * kafkajs leaves a producer whose commit or abort failed (connection lost,
   * broker restarting) in state COMMITTING or ABORTING for good: every later
   * transaction() throws "Cannot call beginTransaction in state …"
   * (tulios/kafkajs#1275, #1355; seen here with a connection cut at EndTxn).
   * A new producer with the same transactional id fences the old one; its
   * first transaction() waits until the broker has finished the old
   * transaction (committed or aborted), so the group's committed offset read
   * next is final. The empty transaction sends nothing.
   */
  private async renewProducer(): Promise<void> {
    await this.producer.disconnect().catch(() => undefined);
    this.producer = this.createProducer();
    await this.producer.connect();
    const txn = await this.producer.transaction();
    await txn.abort();
    this.producerStale = false;
  }

  /** A group's committed offset of a lines partition (undefined when none). */
  private async committedOffset(topic: string, partition: number, groupId = this.groupId): Promise<bigint | undefined> {
    return (await this.committed(topic, partition, groupId))?.offset;
  }

  /** A group's committed offset of a lines partition with the metadata committed along (undefined when none). */
  private async committed(topic: string, partition: number, groupId: string): Promise<{ offset: bigint; metadata: string | null } | undefined> {
    const [t] = await this.admin.fetchOffsets({ groupId, topics: [topic] });
    const p = t?.partitions.find((x) => x.partition === partition);
    return p === undefined || BigInt(p.offset) < 0n ? undefined : { offset: BigInt(p.offset), metadata: p.metadata };
  }

  /**
   * Where a partition opened without a checkpoint re-reads from, to rebuild
   * the messages open at its stored offset: the first record written up to
   * correlator.idleTimeoutMs before the last stored one (its broker timestamp
   * is committed with the stored offset; see storedMetadata). A message idle
   * that long is emitted by the correlator anyway, so only one that kept
   * getting lines for longer (a deferral retried for hours) can still miss
   * its start. Undefined when the stored offset carries no timestamp (stored
   * by an older version).
   */
  private async lookBack(topic: string, partition: number, ts: number | undefined): Promise<bigint | undefined> {
    if (ts === undefined) return undefined;
    const offsets = await this.admin.fetchTopicOffsetsByTimestamp(topic, Math.max(0, ts - this.o.cfg.correlator.idleTimeoutMs));
    const at = offsets.find((p) => p.partition === partition)?.offset;
    return at === undefined || BigInt(at) < 0n ? undefined : BigInt(at);
  }

  /**
   * One open per partition at a time, shared by its first batch and an eager
   * open (whichever asks first); the state is kept only while the partition
   * is still assigned here. Undefined: held (Redis away, see PartitionHold).
   */
  private openPartition(topic: string, partition: number, firstOffset: bigint): Promise<PartState | undefined> {
    const open = this.parts.get(partition);
    if (open !== undefined) return Promise.resolve(open);
    let opening = this.opening.get(partition);
    if (opening === undefined) {
      opening = this.held
        .open(topic, partition, () => this.open(topic, partition, firstOffset))
        .then((ps) => {
          this.metrics.openHolds = this.held.holds;
          if (ps !== undefined && this.assigned.has(partition)) this.parts.set(partition, ps);
          return ps;
        })
        .finally(() => this.opening.delete(partition));
      this.opening.set(partition, opening);
    }
    return opening;
  }

  /**
   * A partition opens with its first batch, but one whose host stopped
   * logging has no next batch: rows a crashed owner never stored (between
   * the stored and the committed offset) would stay missing until that host
   * logs again. So on assignment a partition whose stored offset is behind
   * its committed one opens at once and seeks back; the re-read stores those
   * rows. Retried with a backoff while Redis is away; a failure otherwise
   * leaves the opening to the first batch, as before.
   */
  private async openEagerly(topic: string, partition: number): Promise<void> {
    if (this.o.sink === undefined) return; // nothing to store: the state is rebuilt when records come
    try {
      for (let attempt = 0; this.running && this.assigned.has(partition) && !this.parts.has(partition); attempt++) {
        const committed = await this.committedOffset(topic, partition);
        // Nothing committed: the consumer reads the partition from its start anyway.
        if (committed === undefined) return;
        const stored = await this.committedOffset(topic, partition, this.storedGroupId);
        if (stored !== undefined && stored >= committed) return; // every row stored: the first batch opens it
        // A first batch may have opened it meanwhile, and gone on from there (its state is the one to keep).
        if (this.parts.has(partition)) return;
        const ps = await this.openPartition(topic, partition, committed);
        if (ps === undefined) {
          await sleep(Math.min(EAGER_OPEN_MAX_WAIT_MS, 500 * 2 ** Math.min(attempt, 10)));
          continue;
        }
        // A first batch that opened it before us has sought already (seekTo set) or gone past `committed`.
        if (ps.seekTo === undefined && ps.next < committed && this.parts.get(partition) === ps) {
          ps.seekTo = ps.next;
          ps.staleBatches = 0;
          this.consumer.seek({ topic, partition, offset: String(ps.next) });
          this.metrics.eagerOpens++;
        }
        return;
      }
    } catch (e) {
      this.o.log.warn({ stage: 'parse', partition, err: (e as Error).message }, 'partition not opened on assignment; its first batch opens it');
    }
  }

  private async open(topic: string, partition: number, firstOffset: bigint): Promise<PartState> {
    const cfg = this.o.cfg;
    const st = new ParsePartition({
      zone: this.o.zone,
      idleTimeoutMs: cfg.correlator.idleTimeoutMs,
      maxEntries: cfg.correlator.maxEntries,
      submissions: cfg.enabledDetectors.some((d) => d.submissions === true),
      settled: cfg.enabledDetectors.some((d) => d.settled === true),
      heldAfterMs: cfg.correlator.heldAfterMs,
      ...(this.reads ? { stores: { reads: this.reads } } : {}),
    });
    const snap = await this.o.snapshots.load(this.groupId, cfg.kafka.topics.lines, partition);
    // Asked from the broker, not taken from the batch: after a commit whose answer was lost, kafkajs fetches
    // again from its own last known offset, yet the broker did commit that batch: it must stay silent.
    const committed = (await this.committedOffset(topic, partition)) ?? firstOffset;
    // Without a checkpoint, records fetched below the committed offset still rebuild open messages.
    let next = firstOffset < committed ? firstOffset : committed;
    let restored = false;
    if (snap !== undefined) {
      const at = BigInt(snap.offset);
      if (at <= committed) {
        st.restore(snap.state as ParsePartitionSnapshot);
        next = at;
        restored = true;
        this.metrics.restores++;
      } else {
        this.o.log.warn({ stage: 'parse', partition, snapshot: snap.offset, committed: String(committed) }, 'checkpoint is ahead of the committed offset; starting fresh');
      }
    }
    // -1: none committed yet, so the first transaction commits one.
    let storedCommitted = -1n;
    let storedTs: number | undefined;
    let storeFrom = 0n;
    let lookedBack = false;
    if (this.o.sink !== undefined) {
      const stored = await this.committed(topic, partition, this.storedGroupId);
      if (stored !== undefined) {
        storedCommitted = stored.offset;
        storedTs = storedTimestamp(stored.metadata);
      }
      // No checkpoint (Redis lost it, or never had one): the rows of records past the stored offset may be
      // missing from ClickHouse. Parse from there, silently up to the committed offset. None stored: from the
      // partition's start (the log start, after retention); after an upgrade from a version whose detect
      // stage stored these rows, that re-reads the retained records once.
      if (!restored) {
        const from = stored?.offset ?? 0n;
        if (from < next) next = from;
        // Messages open at the stored offset began before it: re-read from further back, storing nothing
        // below it (those rows are stored), so the messages completed after it are whole and get stored.
        storeFrom = next;
        if (next > 0n) {
          // Asked of the broker; should that fail, the partition still opens, as it did before looking back (partial).
          const back = await this.lookBack(topic, partition, storedTs).catch((e: unknown) => {
            this.o.log.warn({ stage: 'parse', partition, err: (e as Error).message }, 'could not find where to look back from; messages open at the stored offset may be incomplete');
            return undefined;
          });
          if (back !== undefined && back < next) {
            next = back;
            lookedBack = true;
            this.metrics.lookbacks++;
          }
        }
      }
    }
    this.o.log.info({ stage: 'parse', partition, from: String(next), ...(storeFrom > next ? { storeFrom: String(storeFrom) } : {}), committed: String(committed), restored }, 'partition opened');
    return {
      st,
      next,
      silentUntil: committed,
      seekTo: undefined,
      staleBatches: 0,
      lastSnapshotAt: this.now(),
      snapshotOffset: next,
      stored: storeFrom > next ? storeFrom : next,
      storedTs,
      lastTs: undefined,
      storeFrom,
      storedCommitted,
      partial: !restored && next > 0n && !lookedBack,
      checkpointRun: undefined,
    };
  }

  private async onBatch({ batch, heartbeat, isRunning, isStale, resolveOffset }: EachBatchPayload): Promise<void> {
    const partition = batch.partition;
    const first = batch.messages[0];
    if (first === undefined) return;
    if (this.producerStale) {
      try {
        await this.renewProducer();
      } catch (e) {
        throw retriable('renewing the transactional producer', e);
      }
    }
    let ps = this.parts.get(partition);
    if (ps === undefined) {
      ps = await this.openPartition(batch.topic, partition, BigInt(first.offset));
      if (ps === undefined) return; // held: Redis is away (see PartitionHold)
    }
    // The fetch began at the committed offset and our state is older: go back and rebuild (see seekBack).
    const sought = seekBack(ps, BigInt(first.offset), (offset) => this.consumer.seek({ topic: batch.topic, partition, offset: String(offset) }));
    if (sought === 'seeking') return;
    if (sought === 'gap') {
      this.o.log.warn({ stage: 'parse', partition, checkpoint: String(ps.next), logStart: first.offset }, 'records between the checkpoint and the log start are gone (retention); open messages may be incomplete');
      ps.next = BigInt(first.offset);
      ps.partial = true;
    }

    const outputs: RoutedItem[] = [];
    const dead: { value: Buffer }[] = [];
    let lines = 0;
    let last: KafkaMessage | undefined;
    const slices = new Slices(SLICE_MS);
    const sink = this.o.sink;
    for (const msg of batch.messages) {
      // Between records (a record is one shipper batch, up to kafka.batchLines lines): the detect stage shares this event loop.
      await slices.maybeYield();
      if (!isRunning() || isStale()) break;
      const off = BigInt(msg.offset);
      if (off < ps.next) {
        // Done before (see the detect stage): resolved, so a batch wholly below ps.next is not fetched again for ever.
        resolveOffset(msg.offset);
        continue;
      }
      while (sink !== undefined && sink.buffered >= this.o.cfg.clickhouse.maxBufferedRows && isRunning() && !isStale()) {
        // ClickHouse away and the sink full: wait for room, heart-beating so the group keeps this partition here.
        this.metrics.backpressureWaits++;
        await Promise.race([sink.whenRoom(), sleep(1000)]);
        await heartbeat();
      }
      if (!isRunning() || isStale()) break;
      last = msg;
      ps.next = off + 1n;
      ps.lastTs = Number(msg.timestamp);
      this.metrics.records++;
      let chunk;
      try {
        chunk = decodeChunk(msg.value ?? Buffer.alloc(0));
      } catch (e) {
        dead.push({ value: Buffer.from(JSON.stringify({ stage: 'parse', reason: (e as Error).message, topic: batch.topic, partition, offset: msg.offset, sample: (msg.value ?? Buffer.alloc(0)).subarray(0, 512).toString('base64') })) });
        continue;
      }
      lines += chunk.lines.length;
      const dupBefore = ps.st.duplicates;
      const storedOnlyBefore = ps.st.storedOnly;
      const malformedBefore = ps.st.stats.malformed;
      // Below storeFrom an earlier owner committed and stored everything: only the state is rebuilt.
      ps.st.feed(chunk, off < ps.storeFrom);
      this.metrics.duplicateLines += ps.st.duplicates - dupBefore;
      this.metrics.malformedLines += ps.st.stats.malformed - malformedBefore;
      this.metrics.storedOnly += ps.st.storedOnly - storedOnlyBefore;
      const items = ps.st.takeOutput();
      const bad = ps.st.takeMalformed();
      if (sink !== undefined) {
        // Silent records too: their rows may not have reached ClickHouse before this partition moved.
        const rows = ps.st.takeRows();
        if (off >= ps.storeFrom) {
          sink.add('events', rows.events);
          const messages = off < ps.silentUntil && ps.partial ? [] : rows.messages;
          sink.add('messages', messages);
          this.metrics.rows += rows.events.length + messages.length;
        }
      }
      if (off < ps.silentUntil) {
        this.metrics.silentRecords++;
        continue;
      }
      for (const it of items) outputs.push(it);
      for (const b of bad) dead.push({ value: Buffer.from(JSON.stringify({ stage: 'parse', reason: b.reason ?? 'malformed line', file: b.file, offset: b.offset, line: b.line })) });
    }
    this.metrics.lines += lines;
    this.metrics.lastBatchLines = lines;
    if (last === undefined) return;

    if (ps.next <= ps.silentUntil) {
      resolveOffset(last.offset);
      await heartbeat();
      return;
    }
    const t0 = performance.now();
    try {
      await this.commit(batch.topic, partition, ps, outputs, dead);
    } catch (e) {
      // Our state is ahead of what is committed: drop it; the partition is rebuilt from its checkpoint.
      this.metrics.transactionFailures++;
      this.parts.delete(partition);
      this.o.log.warn({ stage: 'parse', partition, err: (e as Error).message }, 'transaction failed; partition will be rebuilt from its checkpoint');
      this.producerStale = true;
      throw retriable('committing a parse transaction', e);
    } finally {
      this.metrics.transactionMs += performance.now() - t0;
    }
    resolveOffset(last.offset);
    this.metrics.items += outputs.length;
    this.metrics.deadLettered += dead.length;
    await heartbeat();
    if (this.now() - ps.lastSnapshotAt >= this.o.cfg.redis.snapshotIntervalMs) this.startCheckpoint(partition, ps);
  }

  /** The events partition of a route; murmur2 in JS per item was a few % of the worker's CPU, and keys repeat. */
  private partitionOf(route: RoutedItem['route']): number {
    const key = routeKey(route);
    let p = this.partitionCache.get(key);
    if (p === undefined) {
      if (this.partitionCache.size >= PARTITION_CACHE_KEYS) this.partitionCache.clear();
      p = partitionFor(key, this.o.eventPartitions);
      this.partitionCache.set(key, p);
    }
    return p;
  }

  private async commit(topic: string, partition: number, ps: PartState, outputs: RoutedItem[], dead: { value: Buffer }[]): Promise<void> {
    const next = ps.next;
    const stored = ps.stored;
    const byPartition = new Map<number, RoutedItem[]>();
    for (const it of outputs) {
      const p = this.partitionOf(it.route);
      let list = byPartition.get(p);
      if (!list) byPartition.set(p, (list = []));
      list.push(it);
    }
    const cfg = this.o.cfg.kafka;
    const records: { topic: string; partition?: number; value: Buffer }[] = [];
    for (const [p, items] of byPartition) for (const value of encodeItems(items)) records.push({ topic: cfg.topics.events, partition: p, value });
    for (const d of dead) records.push({ topic: cfg.topics.deadLetter, value: d.value });
    const compression = cfg.eventsCompression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None;
    const txn = await this.producer.transaction();
    try {
      // Several requests when the batch is big: one would exceed the broker's record batch limit (see requestsWithin).
      for (const request of requestsWithin(records)) {
        const byTopic = new Map<string, { partition?: number; value: Buffer }[]>();
        for (const r of request) {
          let list = byTopic.get(r.topic);
          if (!list) byTopic.set(r.topic, (list = []));
          list.push(r.partition === undefined ? { value: r.value } : { partition: r.partition, value: r.value });
        }
        await txn.sendBatch({ topicMessages: [...byTopic].map(([t, messages]) => ({ topic: t, messages })), acks: -1, compression });
      }
      await txn.sendOffsets({ consumerGroupId: this.groupId, topics: [{ topic, partitions: [{ partition, offset: String(next) }] }] });
      if (stored > ps.storedCommitted) {
        // kafkajs passes each partition's metadata on to TxnOffsetCommit, though its types leave it out.
        const at: PartitionOffset & { metadata: string | null } = { partition, offset: String(stored), metadata: storedMetadata(ps.storedTs) };
        await txn.sendOffsets({ consumerGroupId: this.storedGroupId, topics: [{ topic, partitions: [at] }] });
      }
      await txn.commit();
      if (stored > ps.storedCommitted) ps.storedCommitted = stored;
      this.metrics.transactions++;
    } catch (e) {
      await txn.abort().catch(() => undefined);
      throw e;
    }
  }

  /**
   * The state now, right after a commit, saved in the background once
   * ClickHouse holds the rows of every record before it (with a sink): a
   * restore from it must not skip rows that were never stored. Batches go on
   * meanwhile; one checkpoint per partition at a time.
   */
  private startCheckpoint(partition: number, ps: PartState): void {
    if (ps.checkpointRun !== undefined) return;
    ps.lastSnapshotAt = this.now();
    const sink = this.o.sink;
    // Redis down: the save would fail only after its retries. The stored offset still advances (Kafka holds it).
    const save = this.o.snapshots.reachable();
    if (!save && sink === undefined) return;
    const offset = ps.next;
    const offsetTs = ps.lastTs;
    // Serialised now: the partition's state moves on while the rows are stored.
    const state = save ? serializeState(partition, ps.st.snapshot()) : undefined;
    ps.checkpointRun = (async () => {
      try {
        if (sink !== undefined) {
          await within(sink.flush(), CHECKPOINT_WAIT_MS, 'ClickHouse has not stored the rows yet');
          if (offset > ps.stored) {
            ps.stored = offset;
            ps.storedTs = offsetTs;
          }
        }
        if (state === undefined) return;
        const r = await this.o.snapshots.save(this.groupId, this.o.cfg.kafka.topics.lines, partition, { offset: String(offset), state });
        if (r.saved) {
          ps.snapshotOffset = offset;
          this.metrics.snapshots++;
        }
      } catch (e) {
        // Not fatal: the next checkpoint retries; a restore replays a bit more.
        this.o.log.warn({ stage: 'parse', partition, err: (e as Error).message }, 'checkpoint failed');
      } finally {
        ps.checkpointRun = undefined;
      }
    })();
  }
}

/** The metadata committed with a stored offset: the broker's timestamp of the record before it (see lookBack). */
export function storedMetadata(ts: number | undefined): string | null {
  return ts !== undefined && Number.isSafeInteger(ts) && ts > 0 ? JSON.stringify({ recordTs: ts }) : null;
}

/** storedMetadata backwards; undefined for anything else (none, or committed by an older version). */
export function storedTimestamp(metadata: string | null | undefined): number | undefined {
  if (typeof metadata !== 'string' || !metadata.startsWith('{')) return undefined;
  try {
    const ts = (JSON.parse(metadata) as { recordTs?: unknown }).recordTs;
    return typeof ts === 'number' && Number.isSafeInteger(ts) && ts > 0 ? ts : undefined;
  } catch {
    return undefined;
  }
}

/** Longest a batch holds the event loop at a time, between records (see Slices). */
const SLICE_MS = 20;

/** How long a checkpoint waits for ClickHouse to store the rows before it gives up (the next one retries). */
const CHECKPOINT_WAIT_MS = 10_000;

/** Longest wait between eager opens of a partition whose checkpoint cannot be loaded. */
const EAGER_OPEN_MAX_WAIT_MS = 15_000;

/** Fetch tuning of the lines consumer (see the constructor and kafka.linesFetchWaitMs). */
const FETCH_MIN_BYTES = 64 << 10;
/** Route keys whose partition is remembered (cleared when full: a cache, not a bound on anything). */
const PARTITION_CACHE_KEYS = 100_000;

/**
 * kafkajs stops a consumer for good when eachBatch throws an error it deems
 * non-retriable (a transaction state or protocol error): the worker would
 * live on without parsing. A plain Error makes it fetch the batch again after
 * a pause (and restart the consumer if that keeps failing), which rebuilds
 * the partition from its checkpoint.
 */
function retriable(what: string, e: unknown): Error {
  return new Error(`${what}: ${(e as Error).message}`);
}
