/**
 * The `kafka-floor` bench phase: what the hops of the Kafka path cost with
 * no floodgate work between them, on this machine. A producer sends the
 * generated log's bytes to a topic in records of whole lines (as big as the
 * shipper's, one host's key, acks=all, idempotent, no compression), a
 * consumer passes each record on to ClickHouse as it is (one String row per
 * line, TabSeparated: escaping only where a line holds a backslash or a tab)
 * in inserts of `batchRows` lines. Nothing is parsed, correlated, routed,
 * detected or encoded.
 *
 * Why: the Kafka phase's target (200,000 lines/s on 2 cores) leaves 10 µs
 * of CPU per line for everything. This phase measures how much of that the
 * hops alone take (client, broker, ClickHouse), so what is left for parsing,
 * detection and the stored rows can be set against the `pipeline` phase's
 * CPU per line on the same machine (main.ts prints that ceiling when both
 * phases run). It is a floor, not floodgate: floodgate ships through a
 * follower, stores typed event rows with their JSON, and sends the events
 * through a second topic, all of which costs more.
 *
 * Children: `node dist/bench/kafka-floor.js produce|consume ARGS_JSON`
 * (producer and consumer in processes of their own, so each one's CPU is read
 * apart, as the `kafka` phase reads ship's and detect's).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CompressionTypes, Kafka, logLevel } from 'kafkajs';
import { sqlIdentifier, sqlTable } from '../src/clickhouse/escape.js';
import { validateConfig } from '../src/config/config.js';
import { sleep } from '../src/core/within.js';
import { checkServices, portOf, serviceAddresses } from './kafka-deployment.js';
import { CpuMeter, pidListeningOn } from './proc-cpu.js';

interface ChildArgs {
  file: string;
  brokers: string[];
  clickhouse: string;
  topic: string;
  database: string;
  /** Bytes per Kafka record (whole lines): the shipper's records on the bench log are about this big. */
  recordBytes: number;
  /** Lines per ClickHouse insert (as bytes: batchRows mean lines). */
  batchRows: number;
}

export interface KafkaFloorOptions {
  file: string;
  lines: number;
}

const defaults = validateConfig({});
/** The bench log's mean line length. */
const LINE_BYTES = 152;
/** kafka.batchLines lines of the bench log. */
const RECORD_BYTES = defaults.kafka.batchLines * LINE_BYTES;
/** The broker's default limit on a produce request's batch (message.max.bytes is about 1 MiB). */
const SEND_BYTES = 900 * 1024;

const round2 = (x: number) => Math.round(x * 100) / 100;

async function clickhouse(base: string, sql: string, body?: Buffer): Promise<string> {
  const res = await fetch(`${base}/?query=${encodeURIComponent(sql)}`, { method: 'POST', ...(body ? { body } : {}) });
  const text = await res.text();
  if (!res.ok) throw new Error(`ClickHouse: ${text.trim().slice(0, 300)}`);
  return text;
}

// ---- children ----

async function produce(a: ChildArgs): Promise<void> {
  const kafka = new Kafka({ clientId: 'floodgate-bench-floor', brokers: a.brokers, logLevel: logLevel.NOTHING });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const fd = openSync(a.file, 'r');
  const size = statSync(a.file).size;
  const buf = Buffer.allocUnsafe(a.recordBytes + 64 * 1024);
  let pos = 0;
  let carry = 0;
  let batch: { key: string; value: Buffer }[] = [];
  let batchBytes = 0;
  const send = async () => {
    await producer.send({ topic: a.topic, acks: -1, compression: CompressionTypes.None, messages: batch });
    batch = [];
    batchBytes = 0;
  };
  try {
    while (pos < size || carry > 0) {
      const n = pos < size ? readSync(fd, buf, carry, a.recordBytes, pos) : 0;
      pos += n;
      const end = carry + n;
      // Whole lines only; the rest starts the next record. At the end, what is left (no final newline) goes as is.
      let cut = pos < size ? buf.lastIndexOf(10, end - 1) : end;
      if (cut < 0) cut = end; // a line longer than a record: sent whole
      let value = Buffer.from(buf.subarray(0, cut));
      if (value.length > 0 && value[value.length - 1] === 10) value = value.subarray(0, value.length - 1);
      if (value.length > 0) {
        if (batchBytes + value.length > SEND_BYTES && batch.length > 0) await send();
        batch.push({ key: 'mx1', value });
        batchBytes += value.length;
      }
      const rest = cut < end ? end - cut - 1 : 0;
      buf.copy(buf, 0, end - rest, end);
      carry = rest;
      if (n === 0 && rest === 0) break;
    }
    if (batch.length > 0) await send();
  } finally {
    closeSync(fd);
    await producer.disconnect();
  }
  // Its own CPU, all of it: the parent cannot read /proc of a process that has exited.
  const u = process.cpuUsage();
  process.stdout.write(JSON.stringify({ cpuSeconds: (u.user + u.system) / 1e6 }) + '\n');
}

async function consume(a: ChildArgs): Promise<void> {
  const kafka = new Kafka({ clientId: 'floodgate-bench-floor', brokers: a.brokers, logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: `${a.topic}-floor`, maxBytes: 8 << 20, maxBytesPerPartition: 4 << 20 });
  await consumer.connect();
  await consumer.subscribe({ topic: a.topic, fromBeginning: true });
  const table = sqlTable(a.database, 'lines');
  const newline = Buffer.from('\n');
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const insertBytes = a.batchRows * LINE_BYTES;
  // Two inserts in flight: one being parsed by ClickHouse while the next is gathered.
  const inflight: Promise<string>[] = [];
  const flush = async () => {
    if (pending.length === 0) return;
    const body = Buffer.concat(pending.flatMap((b) => [b, newline]));
    pending = [];
    pendingBytes = 0;
    if (inflight.length >= 2) await inflight.shift();
    // A refused insert ends the run: retrying it would only hide the problem until the phase's timeout.
    inflight.push(
      clickhouse(a.clickhouse, `INSERT INTO ${table} FORMAT TabSeparated`, body).catch((e: unknown) => {
        process.stderr.write(`bench: kafka-floor consume: ${(e as Error).message}\n`);
        process.exit(1);
      }),
    );
  };
  await consumer.run({
    eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
      for (const m of batch.messages) {
        let v = m.value;
        if (v === null || v.length === 0) continue;
        // A one-column TabSeparated row is the line itself unless it holds a backslash or a tab.
        if (v.includes(92) || v.includes(9)) v = Buffer.from(v.toString('utf8').replace(/\\/g, '\\\\').replace(/\t/g, '\\t'));
        pending.push(v);
        pendingBytes += v.length;
        resolveOffset(m.offset);
        if (pendingBytes >= insertBytes) await flush();
      }
      await flush();
      await Promise.all(inflight.splice(0));
      await heartbeat();
    },
  });
}

// ---- the phase ----

/** This module as Node runs it: the built file, also when the caller loaded the TypeScript source (the service tests do). */
function childScript(): string {
  const here = fileURLToPath(import.meta.url);
  return here.endsWith('.ts') ? join(dirname(here), '..', 'dist', 'bench', 'kafka-floor.js') : here;
}

export async function kafkaFloorPhase(o: KafkaFloorOptions): Promise<Record<string, unknown>> {
  const addresses = serviceAddresses();
  await checkServices(addresses);
  const id = `fgfloor${Date.now().toString(36)}${process.pid.toString(36)}`;
  const a: ChildArgs = {
    file: o.file,
    brokers: addresses.kafka,
    clickhouse: addresses.clickhouse,
    topic: id,
    database: id,
    recordBytes: RECORD_BYTES,
    batchRows: defaults.clickhouse.batchRows,
  };
  const kafka = new Kafka({ clientId: 'floodgate-bench-floor', brokers: a.brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const children: ChildProcess[] = [];
  try {
    await admin.createTopics({ topics: [{ topic: id, numPartitions: defaults.kafka.partitions }], waitForLeaders: true });
    await clickhouse(a.clickhouse, `CREATE DATABASE IF NOT EXISTS ${sqlIdentifier(id)}`);
    await clickhouse(a.clickhouse, `CREATE TABLE ${sqlTable(id, 'lines')} (line String) ENGINE = MergeTree ORDER BY tuple()`);
    const self = childScript();
    const start = (role: string) => {
      const c = spawn(process.execPath, [self, role, JSON.stringify(a)], { stdio: ['ignore', 'pipe', 'inherit'] });
      children.push(c);
      return c;
    };
    process.stderr.write(`bench: kafka-floor: ${o.lines} lines through Kafka into ClickHouse, nothing parsed (${id})\n`);
    const consumer = start('consume');
    // The consumer joins its group before the first record, so the clock does not include a rebalance.
    await sleep(4000);
    const producer = start('produce');
    const pids = { consumer: consumer.pid, kafka: pidListeningOn(portOf(a.brokers[0]!)), clickhouse: pidListeningOn(portOf(a.clickhouse)) };
    const cpu = new CpuMeter(pids);
    cpu.begin();
    const t0 = performance.now();
    let producedAtS: number | undefined;
    let producerFailed: number | null = null;
    let producerOut = '';
    producer.stdout!.on('data', (d: Buffer) => void (producerOut += d.toString()));
    producer.on('exit', (code) => {
      producedAtS = (performance.now() - t0) / 1000;
      producerFailed = code === 0 ? null : code;
    });
    const table = sqlTable(id, 'lines');
    for (;;) {
      if (producerFailed !== null) throw new Error(`kafka-floor: the producer exited with status ${String(producerFailed)}`);
      if (consumer.exitCode !== null) throw new Error(`kafka-floor: the consumer exited with status ${consumer.exitCode}`);
      const n = Number(await clickhouse(a.clickhouse, `SELECT count() FROM ${table}`));
      if (n >= o.lines) break;
      if ((performance.now() - t0) / 1000 > 600) throw new Error(`kafka-floor: ClickHouse holds ${n} of ${o.lines} lines after 600 s`);
      await sleep(100);
    }
    const seconds = (performance.now() - t0) / 1000;
    const used = cpu.end();
    const producerCpu = (JSON.parse(producerOut.trim() || '{"cpuSeconds":0}') as { cpuSeconds: number }).cpuSeconds;
    const cpuOf = (name: string) => (name === 'producer' ? producerCpu : (used.processes[name]?.cpuSeconds ?? 0));
    const perLine = (s: number) => round2((s / o.lines) * 1e6);
    const names = ['producer', 'consumer', 'kafka', 'clickhouse'];
    const micros = Object.fromEntries(names.map((n) => [n, perLine(cpuOf(n))]));
    const total = round2(names.reduce((s, n) => s + cpuOf(n), 0) / o.lines * 1e6);
    return {
      phase: 'kafka-floor',
      lines: o.lines,
      seconds: round2(seconds),
      linesPerSec: Math.round(o.lines / seconds),
      producedAtS: producedAtS === undefined ? undefined : round2(producedAtS),
      cpuMicrosPerLine: { ...micros, total },
      /** What the machine's cores could carry if the hops were all there was and every core were busy. */
      hopsOnlyCeilingLinesPerSec: total > 0 ? Math.round((cpus().length * 1e6) / total) : undefined,
      machine: used.machine,
      settings: { recordBytes: a.recordBytes, batchRows: a.batchRows, partitions: defaults.kafka.partitions, compression: 'none' },
      note: 'ship → Kafka → consumer → ClickHouse with nothing parsed: the CPU the hops alone take per line (the producer as it reported at its exit, the others over the run)',
    };
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await admin.deleteTopics({ topics: [id] }).catch(() => undefined);
    await admin.disconnect().catch(() => undefined);
    await clickhouse(a.clickhouse, `DROP DATABASE IF EXISTS ${sqlIdentifier(id)}`).catch(() => undefined);
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1] && (process.argv[2] === 'produce' || process.argv[2] === 'consume')) {
  const args = JSON.parse(process.argv[3] ?? '{}') as ChildArgs;
  (process.argv[2] === 'produce' ? produce(args) : consume(args)).catch((e: unknown) => {
    process.stderr.write(`bench: kafka-floor ${process.argv[2]}: ${(e as Error).message}\n`);
    process.exit(1);
  });
}
