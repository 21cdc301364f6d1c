/**
 * Checkpoints of a detect worker's per-partition state (detector windows,
 * policy) with the Kafka offset they correspond to. The new owner of a
 * partition loads the snapshot and replays Kafka from its offset.
 *
 * One Redis hash per (group, topic, partition) holds offset, time, codec and
 * the compressed state; a Lua script compares and writes it in one step, so a
 * reader sees either the previous snapshot or the new one, never a mix, and
 * the previous one stays until the new one is written whole. The script
 * refuses an offset older than the stored one: a zombie worker still
 * flushing after a rebalance cannot clobber its successor's newer snapshot.
 * An equal offset is accepted (same position, same state: a retried save).
 *
 * State is JSON, brotli-compressed on libuv's thread pool. JSON.stringify and
 * JSON.parse themselves run on the event loop (about 250 ms / 170 ms for
 * 20 MB here); callers with bigger states should snapshot less often.
 */
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import type { Redis } from 'ioredis';
import type { MetricFamily } from '../api/metrics.js';
import { FloodgateError } from '../core/errors.js';
import { keyPart, redisCall, redisFailure } from './connection.js';
import { defineScript, runScript } from './scripts.js';

const brotliCompress = promisify(zlib.brotliCompress);
const brotliDecompress = promisify(zlib.brotliDecompress);

/** Kafka offsets are int64; floodgate stores them as canonical decimal strings. */
const OFFSET_RE = /^(0|[1-9][0-9]{0,18})$/;
const MAX_OFFSET = 2n ** 63n - 1n;
/** Beyond V8's longest string a snapshot could not be parsed anyway. */
const MAX_STATE_BYTES = 512 * 1024 * 1024;
const FORMAT_VERSION = '1';

// Offsets have no leading zeros (checked before the call), so a longer string
// is a bigger number and equal lengths compare digit by digit.
const SAVE_LUA = `
local cur = redis.call('HGET', KEYS[1], 'offset')
if cur then
  local new = ARGV[1]
  if #new < #cur or (#new == #cur and new < cur) then
    return {0, cur}
  end
end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'offset', ARGV[1], 'savedAt', ARGV[3], 'codec', 'br', 'rawBytes', ARGV[4], 'state', ARGV[5])
return {1, ARGV[1]}
`;

export interface SnapshotInput {
  /** The Kafka offset to resume from: the next record not reflected in `state`. */
  offset: string;
  /** The state, or what serializeState made of it earlier (the state as it was then). */
  state: unknown;
}

/**
 * A state already turned into JSON bytes. A checkpoint that must store the
 * state as it was at one offset, while processing goes on before the save
 * (it first waits for ClickHouse), takes it with serializeState at that
 * offset: the live structures may change meanwhile.
 */
export class SerializedState {
  constructor(readonly json: Buffer) {}
}

/** The state as JSON bytes now (synchronous: JSON.stringify on the event loop). */
export function serializeState(partition: number, state: unknown): SerializedState {
  let json: string | undefined;
  try {
    json = JSON.stringify(state);
  } catch (err) {
    throw new FloodgateError('FG_INTERNAL', `snapshot state of partition ${partition} is not JSON-serialisable: ${(err as Error).message}`, { cause: err });
  }
  if (json === undefined) throw new FloodgateError('FG_INTERNAL', `snapshot state of partition ${partition} is undefined`);
  return new SerializedState(Buffer.from(json, 'utf8'));
}

export interface LoadedSnapshot {
  offset: string;
  state: unknown;
  savedAt: number;
}

export type SaveResult =
  | { saved: true; bytes: number; stateBytes: number; ms: number }
  /** Refused: Redis already holds a snapshot at `currentOffset`, newer than the one offered. */
  | { saved: false; currentOffset: string };

export interface SnapshotStats {
  saves: number;
  /** Saves refused because a newer snapshot was already stored (a zombie or a late retry). */
  staleRefused: number;
  /** Compressed bytes written. */
  bytesWritten: number;
  /** JSON bytes before compression. */
  stateBytes: number;
  saveMs: number;
  lastSaveBytes: number;
  loads: number;
  bytesRead: number;
  loadMs: number;
}

export interface PartitionSnapshotsOptions {
  /**
   * Brotli quality 0–11. Default 3: snapshots are written every few seconds
   * and read only on a rebalance, so CPU matters more than size. On 20 MB of
   * detector JSON here: q3 ≈ 17× (1.2 MB) for ~0.25 s of CPU, q5 ≈ 27× for ~0.55 s.
   */
  quality?: number;
  /** Clock for savedAt (tests). */
  now?: () => number;
}

function checkOffset(offset: string): void {
  if (!OFFSET_RE.test(offset) || BigInt(offset) > MAX_OFFSET) {
    throw new FloodgateError('FG_INTERNAL', `snapshot offset must be a Kafka offset (a non-negative int64 in decimal), got ${JSON.stringify(offset.slice(0, 40))}`);
  }
}

function checkPartition(partition: number): void {
  if (!Number.isSafeInteger(partition) || partition < 0) {
    throw new FloodgateError('FG_INTERNAL', `snapshot partition must be a non-negative integer, got ${String(partition).slice(0, 40)}`);
  }
}

export class PartitionSnapshots {
  private readonly quality: number;
  private readonly now: () => number;
  private readonly counters: SnapshotStats = {
    saves: 0,
    staleRefused: 0,
    bytesWritten: 0,
    stateBytes: 0,
    saveMs: 0,
    lastSaveBytes: 0,
    loads: 0,
    bytesRead: 0,
    loadMs: 0,
  };

  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
    opts: PartitionSnapshotsOptions = {},
  ) {
    this.quality = opts.quality ?? 3;
    this.now = opts.now ?? Date.now;
    defineScript(redis, 'fgSnapshotSave', SAVE_LUA);
  }

  /**
   * False while the connection is down (ioredis is reconnecting). A checkpoint
   * then gives up at once: every command would fail anyway, but only after
   * waiting out its retries, seconds in which the caller's consumer stands still.
   */
  reachable(): boolean {
    return this.redis.status === 'ready';
  }

  /** The Redis key of one partition's snapshot; group and topic are encoded so no name can reach another's key. */
  key(group: string, topic: string, partition: number): string {
    checkPartition(partition);
    return `${this.keyPrefix}snapshot:${keyPart(group)}:${keyPart(topic)}:${partition}`;
  }

  async save(group: string, topic: string, partition: number, snap: SnapshotInput): Promise<SaveResult> {
    checkOffset(snap.offset);
    const key = this.key(group, topic, partition);
    const started = performance.now();
    const raw = (snap.state instanceof SerializedState ? snap.state : serializeState(partition, snap.state)).json;
    const packed = await brotliCompress(raw, {
      params: {
        [zlib.constants.BROTLI_PARAM_QUALITY]: this.quality,
        [zlib.constants.BROTLI_PARAM_SIZE_HINT]: raw.length,
        [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_TEXT,
      },
    });
    const what = `saving the snapshot of partition ${partition}`;
    const reply = await redisCall(this.redis, what, () =>
      runScript(this.redis, 'fgSnapshotSave', key, snap.offset, FORMAT_VERSION, String(this.now()), String(raw.length), packed),
    );
    if (!Array.isArray(reply) || reply.length !== 2) throw redisFailure(this.redis, what, new Error('unexpected reply from the snapshot script'));
    const ms = performance.now() - started;
    if (Number(reply[0]) !== 1) {
      this.counters.staleRefused++;
      return { saved: false, currentOffset: String(reply[1]) };
    }
    this.counters.saves++;
    this.counters.bytesWritten += packed.length;
    this.counters.stateBytes += raw.length;
    this.counters.saveMs += ms;
    this.counters.lastSaveBytes = packed.length;
    return { saved: true, bytes: packed.length, stateBytes: raw.length, ms };
  }

  async load(group: string, topic: string, partition: number): Promise<LoadedSnapshot | undefined> {
    const key = this.key(group, topic, partition);
    const started = performance.now();
    const what = `loading the snapshot of partition ${partition}`;
    const [v, offset, savedAt, codec, rawBytes, packed] = await redisCall(this.redis, what, () =>
      this.redis.hmgetBuffer(key, 'v', 'offset', 'savedAt', 'codec', 'rawBytes', 'state'),
    );
    if (offset === null || offset === undefined) return undefined;
    const bad = (why: string, cause?: unknown): FloodgateError =>
      new FloodgateError('FG_REDIS_FAILED', `snapshot ${key} does not decode (${why}); delete it to rebuild the partition from Kafka`, { cause });
    if (v?.toString() !== FORMAT_VERSION) throw bad(`format version ${v?.toString() ?? 'missing'}, this floodgate reads ${FORMAT_VERSION}`);
    if (codec?.toString() !== 'br' || !packed) throw bad('no brotli state');
    const offsetText = offset.toString();
    if (!OFFSET_RE.test(offsetText)) throw bad('offset is not a decimal int64');
    const expected = Number(rawBytes?.toString());
    if (!Number.isSafeInteger(expected) || expected < 0 || expected > MAX_STATE_BYTES) throw bad('state size out of range');
    let state: unknown;
    try {
      // The stored size bounds the output, so a damaged or hostile value cannot inflate without limit.
      const raw = await brotliDecompress(packed, { maxOutputLength: Math.max(expected, 1) });
      if (raw.length !== expected) throw new Error(`expected ${expected} bytes, got ${raw.length}`);
      state = JSON.parse(raw.toString('utf8'));
    } catch (err) {
      throw bad((err as Error).message, err);
    }
    this.counters.loads++;
    this.counters.bytesRead += packed.length;
    this.counters.loadMs += performance.now() - started;
    return { offset: offsetText, state, savedAt: Number(savedAt?.toString()) };
  }

  /** Forget a partition's snapshot (its state is rebuilt by replaying Kafka). True when one existed. */
  async delete(group: string, topic: string, partition: number): Promise<boolean> {
    const key = this.key(group, topic, partition);
    const n = await redisCall(this.redis, `deleting the snapshot of partition ${partition}`, () => this.redis.del(key));
    return n > 0;
  }

  stats(): SnapshotStats {
    return { ...this.counters };
  }

  metrics(): MetricFamily[] {
    const c = this.counters;
    return [
      {
        name: 'floodgate_snapshot_saves_total',
        help: 'Partition snapshots written to Redis, and saves refused because a newer snapshot was stored.',
        type: 'counter',
        samples: [
          { labels: { result: 'saved' }, value: c.saves },
          { labels: { result: 'stale' }, value: c.staleRefused },
        ],
      },
      { name: 'floodgate_snapshot_saved_bytes_total', help: 'Compressed snapshot bytes written to Redis.', type: 'counter', samples: [{ value: c.bytesWritten }] },
      { name: 'floodgate_snapshot_state_bytes_total', help: 'Snapshot state bytes (JSON) before compression.', type: 'counter', samples: [{ value: c.stateBytes }] },
      { name: 'floodgate_snapshot_save_seconds_total', help: 'Time spent serialising, compressing and writing snapshots.', type: 'counter', samples: [{ value: c.saveMs / 1000 }] },
      { name: 'floodgate_snapshot_last_save_bytes', help: 'Compressed size of the latest snapshot written.', type: 'gauge', samples: [{ value: c.lastSaveBytes }] },
      { name: 'floodgate_snapshot_loads_total', help: 'Partition snapshots restored from Redis.', type: 'counter', samples: [{ value: c.loads }] },
      { name: 'floodgate_snapshot_load_seconds_total', help: 'Time spent reading, decompressing and parsing snapshots.', type: 'counter', samples: [{ value: c.loadMs / 1000 }] },
    ];
  }
}
