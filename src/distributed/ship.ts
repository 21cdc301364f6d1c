/**
 * `floodgate ship`: follows the configured log files (tail -F, rotation
 * aware) and produces their lines to the lines topic, keyed by this host so
 * one host's lines stay in order in one partition (the parse stage joins a
 * message's lines by host and queue id).
 *
 * Delivery: a follower batch becomes one Kafka send of one or more records
 * (each at most about BLOCK_BYTES, see wire.ts); the follower waits for
 * the broker's acknowledgement (acks=all, idempotent producer) before reading
 * on, and its position is saved only after that. When Kafka is down the send
 * fails, the follower retries the same batch with backoff and reads nothing
 * more: memory stays at one batch per input and nothing is skipped. A batch
 * acknowledged but not yet recorded in the state file (crash in between) is
 * sent again after a restart; the parse stage drops those lines by offset.
 */
import { hostname } from 'node:os';
import { CompressionTypes, type Producer } from 'kafkajs';
import type { FloodgateConfig } from '../config/config.js';
import { Follower, type FollowLine, type FollowPosition } from '../input/follower.js';
import type { Logger } from './log.js';
import { loadShipState, positionOf, saveShipState, type ShipState } from './ship-state.js';
import { BLOCK_BYTES, encodeChunk } from './wire.js';

export interface ShipMetrics {
  linesShipped: number;
  bytesShipped: number;
  batches: number;
  sendFailures: number;
  /** Lines read and waiting for the broker's acknowledgement. */
  inFlightLines: number;
  lastSendMs: number;
}

export interface ShipperOptions {
  cfg: FloodgateConfig;
  producer: Producer;
  log: Logger;
  /** Kafka key and default host; default: ship.host, else this machine's hostname. */
  host?: string;
  pollMs?: number;
  now?: () => number;
}

interface InputRun {
  path: string;
  format: FloodgateConfig['inputs'][number]['format'];
  host: string;
  generation: number;
  follower?: Follower;
}

export class Shipper {
  readonly metrics: ShipMetrics = { linesShipped: 0, bytesShipped: 0, batches: 0, sendFailures: 0, inFlightLines: 0, lastSendMs: 0 };
  private readonly cfg: FloodgateConfig;
  private readonly producer: Producer;
  private readonly log: Logger;
  private readonly host: string;
  private readonly pollMs: number;
  private readonly now: () => number;
  private readonly state: ShipState;
  private readonly runs: InputRun[] = [];
  private saveTimer: NodeJS.Timeout | undefined;
  private dirty = false;
  private lastFailure = '';

  constructor(o: ShipperOptions) {
    this.cfg = o.cfg;
    this.producer = o.producer;
    this.log = o.log;
    this.host = o.host ?? o.cfg.ship.host ?? hostname();
    this.pollMs = o.pollMs ?? 250;
    this.now = o.now ?? Date.now;
    this.state = loadShipState(o.cfg.ship.statePath);
  }

  async start(): Promise<void> {
    for (const inp of this.cfg.inputs) {
      const saved = this.state.inputs[inp.path];
      const run: InputRun = { path: inp.path, format: inp.format, host: inp.host === 'localhost' ? this.host : inp.host, generation: saved?.generation ?? 0 };
      run.follower = new Follower(inp.path, {
        ...(saved ? { startAt: saved.position } : {}),
        pollMs: this.pollMs,
        maxBatchLines: this.cfg.kafka.batchLines,
        onLines: (batch, pos) => this.send(run, batch, pos),
        onRotate: (info) => {
          // A truncated file starts its offsets over: a new generation keeps its lines distinct from the old ones.
          if (info.kind === 'truncate') run.generation++;
          this.log.info({ input: inp.path, kind: info.kind, from: info.from }, 'input rotated');
        },
        onError: (err) => {
          this.metrics.sendFailures++;
          if (err.message !== this.lastFailure) this.log.warn({ input: inp.path, err: err.message }, 'shipping paused; retrying');
          this.lastFailure = err.message;
        },
      });
      this.runs.push(run);
    }
    for (const r of this.runs) await r.follower!.start();
    this.log.info({ inputs: this.runs.length, host: this.host, topic: this.cfg.kafka.topics.lines }, 'shipping');
  }

  private async send(run: InputRun, batch: FollowLine[], pos: FollowPosition): Promise<void> {
    const source = `${run.host}:${pos.dev}:${pos.ino}:${run.generation}`;
    const mtime = this.now();
    const values: Buffer[] = [];
    // The header's fixed part, and per line its text, newline and offset step (a few digits).
    const base = 128 + run.host.length + run.path.length + source.length;
    let lines: string[] = [];
    let offsets: number[] = [];
    let size = base;
    const cut = () => {
      values.push(encodeChunk({ host: run.host, file: run.path, source, format: run.format, mtime, offsets, lines }));
      lines = [];
      offsets = [];
      size = base;
    };
    for (const { line, offset } of batch) {
      const bytes = Buffer.byteLength(line) + 12;
      if (lines.length > 0 && size + bytes > BLOCK_BYTES) cut();
      lines.push(line);
      offsets.push(offset);
      size += bytes;
    }
    if (lines.length > 0) cut();
    this.metrics.inFlightLines += batch.length;
    const t0 = performance.now();
    try {
      await this.producer.send({
        topic: this.cfg.kafka.topics.lines,
        acks: -1,
        compression: this.cfg.kafka.compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None,
        messages: values.map((value) => ({ key: this.host, value })),
      });
    } finally {
      this.metrics.inFlightLines -= batch.length;
    }
    if (this.lastFailure !== '') {
      this.log.info({ input: run.path }, 'shipping resumed');
      this.lastFailure = '';
    }
    this.metrics.lastSendMs = performance.now() - t0;
    this.metrics.linesShipped += batch.length;
    for (const v of values) this.metrics.bytesShipped += v.length;
    this.metrics.batches++;
    this.state.inputs[run.path] = { position: positionOf(pos), generation: run.generation };
    this.scheduleSave();
  }

  /** Saving after every batch would cost a file write per send; a re-sent batch after a crash is dropped downstream anyway. */
  private scheduleSave(): void {
    this.dirty = true;
    if (this.saveTimer) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = undefined;
      this.saveNow();
    }, 200);
  }

  private saveNow(): void {
    if (!this.dirty) return;
    this.dirty = false;
    try {
      saveShipState(this.cfg.ship.statePath, this.state);
    } catch (e) {
      this.dirty = true;
      this.log.error({ err: (e as Error).message, path: this.cfg.ship.statePath }, 'cannot save ship state');
    }
  }

  /** Stop following; the batch in flight is awaited and the state saved. */
  async stop(): Promise<void> {
    await Promise.all(this.runs.map((r) => r.follower?.stop()));
    if (this.saveTimer) clearTimeout(this.saveTimer);
    this.saveTimer = undefined;
    this.saveNow();
  }

  inputStatus(): { path: string; position: FollowPosition | undefined; lines: number }[] {
    return this.runs.map((r) => ({ path: r.path, position: r.follower?.position(), lines: r.follower?.stats().linesDelivered ?? 0 }));
  }
}
