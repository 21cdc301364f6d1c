/**
 * The `kafka` bench phase: the distributed path on the real services
 * (ship → Kafka → detect (parse stage → events topic → detect stage) →
 * ClickHouse), with `floodgate ship` and `floodgate detect` as child
 * processes. Needs Kafka, ClickHouse and Redis (`bash scripts/services.sh
 * up`) and fails, naming what is missing, when they do not answer.
 *
 * Throughput: the generated log is appended at once to the file a running
 * shipper follows; the clock runs from the first byte appended until
 * ClickHouse holds every event of the file (as many distinct event ids as
 * parsing the same file yields). Per stage: when the shipper had every line
 * acknowledged, the parse stage every line parsed, the detect stage every
 * item fed; per process the CPU it used (which one was the bottleneck).
 *
 * Latency: a fresh deployment with latency-minded settings; a writer appends
 * generated lines at a steady rate, with marker lines among them (a cleartext
 * IMAP login of an account of their own, which plaintext-auth reports at
 * once); the time from a marker's write to its finding's row being visible
 * in ClickHouse, and to its event's row, found by polling ClickHouse in a
 * tight loop (the schema has no insert-time column: 18.16 has no DateTime64),
 * so each latency is an upper bound by at most one poll cycle. With `hops`,
 * two more consumers of the bench's own time when a marker reached the lines
 * and the events topic (the split by hop); they are off by default because
 * they are not free: on 11-29f they took a quarter of a core (the broker's
 * share included) of the two that the measured path shares, and the
 * finding's p99 rose from 453–501 ms without them (five runs) to 660–839 ms
 * with them (four).
 */
import { closeSync, createReadStream, createWriteStream, openSync, readdirSync, writeSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Kafka, logLevel } from 'kafkajs';
import { sqlInt, sqlString } from '../src/clickhouse/escape.js';
import { validateConfig } from '../src/config/config.js';
import { ZoneClock } from '../src/envelope/zone.js';
import { parseFiles } from '../src/pipeline/parse-files.js';
import { accountRoute, ipRoute, routeKey } from '../src/detect/route.js';
import { partitionFor } from '../src/distributed/kafka.js';
import { summarizeProfile, type ProfileSummary } from './cpu-profile.js';
import { generateLines } from './generate.js';
import { BenchDeployment, checkServices, metricSum, portOf, serviceAddresses, type DeploymentSettings, type ServiceAddresses } from './kafka-deployment.js';
import { CpuMeter, pidListeningOn } from './proc-cpu.js';

export interface KafkaPhaseOptions {
  /** The generated log (bench/main.ts's cached file). */
  file: string;
  seed: number;
  /** Steady write rate of the latency run, lines/s. */
  rate: number;
  /** Length of the latency run, s. */
  seconds: number;
  /** Marker lines per second in the latency run. */
  markersPerSec: number;
  /** Folder for `node --cpu-prof` profiles of the children, one subfolder per run (summarised in the output). */
  profileDir?: string;
  /** Leave the deployments (database, topics, keys, logs) in place for inspection. */
  keep?: boolean;
  /** Which runs (default both). */
  runs?: { throughput: boolean; latency: boolean };
  /** Settings changed in both runs (what-if experiments); printed with the rest. */
  overrides?: Partial<DeploymentSettings>;
  /** Watch the topics for the markers, to split the latency by hop (costs CPU the measured path shares; see above). */
  hops?: boolean;
}

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const round1 = (x: number) => Math.round(x * 10) / 10;
const SHIP_HOST = 'mx1';

const defaults = validateConfig({});

/** As a deployment would run for volume: the config's defaults (read from it, so the bench follows them). */
export const throughputSettings: DeploymentSettings = {
  partitions: defaults.kafka.partitions,
  batchLines: defaults.kafka.batchLines,
  compression: defaults.kafka.compression,
  eventsCompression: defaults.kafka.eventsCompression,
  linesFetchWaitMs: defaults.kafka.linesFetchWaitMs,
  flushMs: defaults.clickhouse.flushMs,
  urgentFlushMs: defaults.clickhouse.urgentFlushMs,
  batchRows: defaults.clickhouse.batchRows,
  snapshotIntervalMs: defaults.redis.snapshotIntervalMs,
  shipPollMs: 250, // `floodgate ship --poll-ms` default
  shipHost: SHIP_HOST,
  splitStages: false,
};

/**
 * As a deployment that wants findings stored fast would run: the shipper
 * polls often (fs.watch wakes it sooner still), the parse stage takes lines
 * after at most 20 ms, findings, decisions and actions go to ClickHouse
 * within 25 ms, events and messages in batches every 500 ms (they are most
 * of ClickHouse's work, and what latency measures is the finding). Ship
 * sends each follower batch at once (no linger). Checkpoints stay at the
 * default 5 s: each one flushes every table and commits offsets, so more
 * often costs CPU the path shares. On 11-29f the 20/25 ms waits instead of
 * 50/50 gave p50 163–164 ms against 238–254, p99 425–479 against 514–548,
 * in alternating runs, for about 0.13 core more at 10,000 lines/s.
 */
export const latencySettings: DeploymentSettings = { ...throughputSettings, flushMs: 500, urgentFlushMs: 25, linesFetchWaitMs: 20, shipPollMs: 20 };

/**
 * `--kafka-settings JSON` as deployment settings: an object whose keys are
 * settings and whose values have their types. A misspelt key would
 * otherwise change nothing and the run would measure the defaults unnoticed.
 */
export function parseKafkaSettings(text: string): Partial<DeploymentSettings> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`--kafka-settings: not JSON (${(e as Error).message})`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('--kafka-settings: expected a JSON object, e.g. {"batchRows":5000}');
  const known: Record<string, string> = { ...Object.fromEntries(Object.entries(throughputSettings).map(([k, d]) => [k, typeof d])), detectWorkers: 'number', workerNodeFlags: 'string[]' };
  for (const [k, x] of Object.entries(v)) {
    const type = known[k];
    if (type === undefined) throw new Error(`--kafka-settings: unknown setting '${k}' (${Object.keys(known).join(', ')})`);
    const ok = type === 'string[]' ? Array.isArray(x) && x.every((f) => typeof f === 'string') : type === 'number' ? typeof x === 'number' && Number.isFinite(x) && x >= 0 : typeof x === type;
    if (!ok) throw new Error(`--kafka-settings: ${k} must be ${type === 'number' ? 'a number ≥ 0' : type === 'string[]' ? 'an array of strings' : `a ${type}`}`);
  }
  if ('detectWorkers' in v && !(Number.isInteger(v.detectWorkers) && (v.detectWorkers as number) >= 1)) throw new Error('--kafka-settings: detectWorkers must be an integer ≥ 1');
  return v as Partial<DeploymentSettings>;
}

interface Services {
  addresses: ServiceAddresses;
  pids: { kafka?: number; clickhouse?: number; redis?: number };
}

export async function kafkaPhase(o: KafkaPhaseOptions): Promise<Record<string, unknown>> {
  const addresses = serviceAddresses();
  const versions = await checkServices(addresses);
  const services: Services = {
    addresses,
    pids: {
      kafka: pidListeningOn(portOf(addresses.kafka[0]!)),
      clickhouse: pidListeningOn(portOf(addresses.clickhouse)),
      redis: pidListeningOn(portOf(addresses.redis)),
    },
  };
  const runs = o.runs ?? { throughput: true, latency: true };
  const load0 = loadavg();
  const throughput = runs.throughput ? await throughputRun(services, o) : undefined;
  const latency = runs.latency ? await latencyRun(services, o) : undefined;
  return {
    phase: 'kafka',
    linesPerSec: (throughput?.linesPerSec as number | undefined) ?? 0,
    services: { clickhouse: versions.clickhouse, redis: versions.redis, kafkaBrokers: versions.kafkaBrokers, note: 'shared with anything else using them meanwhile; their CPU below is all of theirs' },
    loadAverage1m: { before: round1(load0[0]!), after: round1(loadavg()[0]!) },
    ...(throughput ? { throughput } : {}),
    ...(latency ? { latency } : {}),
  };
}

// ---------------------------------------------------------------------------
// Throughput

async function throughputRun(services: Services, o: KafkaPhaseOptions): Promise<Record<string, unknown>> {
  process.stderr.write('bench: kafka: counting the events of the input\n');
  const parsed = await parseFiles([o.file], { zone: new ZoneClock('UTC'), year: 2026 });
  const expected = { lines: parsed.stats.lines, events: parsed.stats.events, bytes: parsed.bytes };
  const settings = { ...throughputSettings, ...o.overrides };
  const profileDir = o.profileDir ? join(o.profileDir, 'throughput') : undefined;
  const flags = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  const d = new BenchDeployment(services.addresses, settings, flags);
  try {
    process.stderr.write(`bench: kafka: throughput run (${d.id}) starting ship and detect\n`);
    await d.start();
    const ship = d.ship!;
    const cpu = new CpuMeter({ ...d.pids(), ...services.pids });
    cpu.begin();
    const t0 = now();
    process.stderr.write(`bench: kafka: appending ${expected.lines} lines\n`);
    await pipeline(createReadStream(o.file, { highWaterMark: 1 << 20 }), createWriteStream(d.input, { flags: 'a' }));
    const appendedS = (now() - t0) / 1000;

    // Three watchers, each on its own clock: a busy detect process answers /metrics late,
    // which must not delay noticing that the shipper or ClickHouse is done.
    const done: Record<string, number> = {};
    const at = () => (now() - t0) / 1000;
    let parseItems = 0;
    let finished = false;
    const scrapeMs = { ship: 0, detect: 0 };
    const progress = { shipped: 0, parsed: 0, items: 0, stored: 0 };
    let watchError: Error | undefined;
    const noteError = (e: unknown) => void (watchError ??= e as Error);
    const watchShip = (async () => {
      while (!finished && done.ship === undefined) {
        const t = now();
        const sm = await d.metrics(ship);
        scrapeMs.ship = Math.max(scrapeMs.ship, now() - t);
        progress.shipped = metricSum(sm, 'floodgate_ship_lines_total');
        if (progress.shipped >= expected.lines) done.ship = at();
        else await sleep(100);
      }
    })().catch(noteError);
    const watchDetect = (async () => {
      while (!finished && done.detect === undefined) {
        const t = now();
        const dm = await d.workerMetrics();
        scrapeMs.detect = Math.max(scrapeMs.detect, now() - t);
        progress.parsed = metricSum(dm, 'floodgate_parse_lines_total');
        progress.items = metricSum(dm, 'floodgate_detect_items_total');
        // Lines are counted before their transaction commits, items after: parse is done when its items stop moving.
        const items = metricSum(dm, 'floodgate_parse_items_total');
        if (done.parse === undefined && progress.parsed >= expected.lines && items === parseItems) done.parse = at();
        parseItems = items;
        if (done.parse !== undefined && progress.items >= parseItems) done.detect = at();
        else await sleep(100);
      }
    })().catch(noteError);
    let lastProgress = now();
    let lastSeen = -1;
    const disturbances: string[] = [];
    try {
      for (;;) {
        d.assertRunning();
        if (watchError) throw watchError;
        // ClickHouse may be restarted under us (other suites share it): the sink rides that out, and so does this count.
        try {
          progress.stored = await d.count('SELECT count() AS n FROM events');
        } catch (e) {
          disturbances.push(`${at().toFixed(1)} s: ${(e as Error).message.slice(0, 200)}`);
          if (disturbances.length > 120) throw new Error(`ClickHouse stopped answering the bench: ${disturbances.slice(-3).join('; ')}`);
          await sleep(1000);
          continue;
        }
        if (progress.stored >= expected.events) {
          done.clickhouse = at();
          break;
        }
        const sum = progress.shipped + progress.parsed + progress.items + progress.stored;
        if (sum !== lastSeen) {
          lastSeen = sum;
          lastProgress = now();
        } else if (now() - lastProgress > 120_000) {
          throw new Error(`no progress for 120 s (${JSON.stringify(progress)} of ${expected.lines} lines, ${expected.events} events)\n${d.logs()}`);
        }
        await sleep(100);
      }
      await Promise.all([watchShip, watchDetect]);
      if (watchError) throw watchError;
    } finally {
      finished = true;
    }
    const seconds = done.clickhouse!;
    const usage = cpu.end();
    const distinct = await d.count('SELECT uniqExact(id) AS n FROM events');
    // The rest (open messages, findings after the last events) goes with the next flush.
    await sleep(settings.flushMs + 1500);
    const dm = await d.workerMetrics();
    const sm = await d.metrics(ship);
    const storedDistinct = {
      events: distinct,
      messages: await d.count('SELECT uniqExact(id) AS n FROM messages'),
      findings: await d.count('SELECT uniqExact(id) AS n FROM findings'),
      decisions: await d.count('SELECT uniqExact(id) AS n FROM decisions'),
    };
    if (distinct !== expected.events) throw new Error(`ClickHouse holds ${distinct} distinct events, parsing the file gives ${expected.events}`);
    await d.stop();
    const profile = profileDir ? profilesOf(profileDir, d.pids()) : undefined;
    const rate = (s: number | undefined, n: number) => (s === undefined ? undefined : Math.round(n / s));
    return {
      id: d.id,
      lines: expected.lines,
      bytes: expected.bytes,
      events: expected.events,
      seconds: round1(seconds),
      linesPerSec: Math.round(expected.lines / seconds),
      appendSeconds: round1(appendedS),
      note: 'from the first byte appended until ClickHouse holds every event of the file (count() ≥ events parsed from it, then uniqExact(id) = that count); stages run concurrently, so each one\'s rate is capped by those before it',
      stages: {
        ship: { doneAtS: round1(done.ship ?? Number.NaN), linesPerSec: rate(done.ship, expected.lines), records: metricSum(sm, 'floodgate_ship_batches_total') },
        parse: { doneAtS: round1(done.parse ?? Number.NaN), linesPerSec: rate(done.parse, expected.lines), items: parseItems, transactions: metricSum(dm, 'floodgate_parse_transactions_total'), transactionSeconds: round1(metricSum(dm, 'floodgate_parse_transaction_seconds_total')) },
        detect: { doneAtS: round1(done.detect ?? Number.NaN), itemsPerSec: rate(done.detect, parseItems), checkpoints: metricSum(dm, 'floodgate_checkpoints_total') },
        clickhouse: { doneAtS: round1(seconds), eventRowsPerSec: rate(seconds, expected.events), inserts: insertStats(dm) },
      },
      storedDistinct,
      findings: metricSum(dm, 'floodgate_findings_total'),
      ...(disturbances.length > 0 ? { disturbances: { count: disturbances.length, first: disturbances.slice(0, 5), note: 'ClickHouse did not answer the bench meanwhile: the run is slower than the pipeline is' } } : {}),
      metricsScrapeMaxMs: { ship: Math.round(scrapeMs.ship), detect: Math.round(scrapeMs.detect), note: 'slowest /metrics answer during the run: how long the process\'s event loop was held at most (roughly)' },
      cpu: usage,
      cpuMicrosecondsPerLine: Object.fromEntries(Object.entries(usage.processes).map(([k, v]) => [k, Math.round((v.cpuSeconds * 1e6) / expected.lines)])),
      settings,
      ...(profile ? { profile } : {}),
    };
  } finally {
    await d.stop();
    if (!o.keep) await d.remove();
  }
}

/** Per table: rows, insert batches and the mean time one insert took (the sink runs one at a time per table). */
function insertStats(m: Map<string, number>): Record<string, { rows: number; batches: number; meanInsertMs: number }> {
  const out: Record<string, { rows: number; batches: number; meanInsertMs: number }> = {};
  for (const table of ['events', 'messages', 'findings', 'decisions']) {
    const batches = m.get(`floodgate_clickhouse_batches_total{table="${table}"}`) ?? 0;
    const seconds = m.get(`floodgate_clickhouse_insert_seconds_total{table="${table}"}`) ?? 0;
    out[table] = { rows: m.get(`floodgate_clickhouse_rows_inserted_total{table="${table}"}`) ?? 0, batches, meanInsertMs: batches > 0 ? Math.round((seconds * 1000) / batches) : 0 };
  }
  return out;
}

function profilesOf(dir: string, pids: Record<string, number | undefined>): Record<string, ProfileSummary> {
  const out: Record<string, ProfileSummary> = {};
  const files = readdirSync(dir);
  for (const [name, pid] of Object.entries(pids)) {
    const f = files.find((x) => x.endsWith('.cpuprofile') && x.includes(`.${pid}.`));
    if (f) out[name] = summarizeProfile(join(dir, f));
  }
  return out;
}

// ---------------------------------------------------------------------------
// Latency

interface Marker {
  account: string;
  ip: string;
  /** The account's and the IP's events-topic partitions differ: plaintext-auth's finding crosses to the account's by a hand-off. */
  handOff: boolean;
  logTs: number;
  writtenAt: number;
  findingAt?: number;
  eventAt?: number;
  /** When the bench's own consumers first saw it in the lines topic and (committed) in the events topic. */
  linesAt?: number;
  itemsAt?: number;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** Log time of a generated line: Zimbra's `2026-11-27 10:00:00,123` or syslog's `Nov 27 10:00:01` (the generator's year). */
function logTimeOf(line: string, year: number): number | undefined {
  if (/^\d{4}-\d\d-\d\d /.test(line)) return Date.parse(`${line.slice(0, 10)}T${line.slice(11, 19)}.${line.slice(20, 23)}Z`);
  const m = MONTHS.indexOf(line.slice(0, 3));
  if (m < 0) return undefined;
  const [h, mi, s] = line.slice(7, 15).split(':').map(Number);
  return Date.UTC(year, m, Number(line.slice(4, 6)), h, mi, s);
}

function isoStamp(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace('.', ',').slice(0, 23);
}

/** A cleartext IMAP login (thread ImapServer-, not ImapSSLServer-) by an account that exists only here: one plaintext-auth finding, at once. */
function markerLine(m: Marker, i: number): string {
  return `${isoStamp(m.logTs)} INFO  [ImapServer-${1 + (i % 40)}] [name=${m.account};ip=${m.ip};] imap - user ${m.account} authenticated, mechanism=PLAIN`;
}

function percentiles(xs: number[]): { count: number; p50Ms?: number; p90Ms?: number; p99Ms?: number; maxMs?: number; meanMs?: number } {
  if (xs.length === 0) return { count: 0 };
  const s = [...xs].sort((a, b) => a - b);
  // Nearest rank: the smallest value with at least p% of the samples at or below it.
  const q = (p: number) => Math.round(s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!);
  return { count: s.length, p50Ms: q(50), p90Ms: q(90), p99Ms: q(99), maxMs: Math.round(s[s.length - 1]!), meanMs: Math.round(s.reduce((a, b) => a + b, 0) / s.length) };
}

/** Per 2 s of the run (by write time): the slowest finding, so a periodic stall (checkpoint, big batch) shows as a spike. */
function overTime(markers: Marker[], t0: number): { note: string; maxMsPer2s: number[] } {
  const out: number[] = [];
  for (const m of markers) {
    if (m.findingAt === undefined) continue;
    const i = Math.floor((m.writtenAt - t0) / 2000);
    while (out.length <= i) out.push(0);
    out[i] = Math.max(out[i]!, Math.round(m.findingAt - m.writtenAt));
  }
  return { note: 'slowest finding latency of the markers written in each 2 s of the run, in order', maxMsPer2s: out };
}

/** The detect worker's event-loop delays over the run (its first scrape is the bench's last), in ms. */
function loopDelayOf(m: Map<string, number>): Record<string, number | string> {
  const ms = (stat: string) => Math.round((m.get(`floodgate_event_loop_delay_seconds{stat="${stat}"}`) ?? Number.NaN) * 1000);
  return { p50: ms('p50'), p99: ms('p99'), max: ms('max'), note: 'how late the detect worker ran a 10 ms timer during the run: every line, finding and insert of the worker waits behind what holds its event loop' };
}

/**
 * Two consumers of the bench's own (lines topic as written, events topic as
 * committed) that note when each marker first shows up there, so the
 * latency splits into ship, parse stage, and detect stage + ClickHouse.
 */
async function watchHops(d: BenchDeployment, prefix: string, byAccount: Map<string, Marker>): Promise<{ stop(): Promise<void> }> {
  const kafka = new Kafka({ clientId: 'floodgate-bench-hops', brokers: d.services.kafka, logLevel: logLevel.NOTHING });
  const needle = Buffer.from(prefix);
  const accounts = new RegExp(`${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\d+@example\\.com`, 'g');
  const consumers = await Promise.all(
    ([
      [d.topics.lines, true, 'linesAt'],
      [d.topics.events, false, 'itemsAt'],
    ] as const).map(async ([topic, readUncommitted, field]) => {
      const c = kafka.consumer({ groupId: `${d.id}-bench-hops-${field}`, readUncommitted, maxWaitTimeInMs: 50 });
      await c.connect();
      await c.subscribe({ topic, fromBeginning: true });
      await c.run({
        eachMessage: async ({ message }) => {
          const v = message.value;
          if (v === null || v.indexOf(needle) < 0) return;
          const t = now();
          for (const [account] of v.toString('utf8').matchAll(accounts)) {
            const m = byAccount.get(account);
            if (m && m[field] === undefined) m[field] = t;
          }
        },
      });
      return c;
    }),
  );
  return { stop: async () => void (await Promise.all(consumers.map((c) => c.disconnect().catch(() => undefined)))) };
}

async function latencyRun(services: Services, o: KafkaPhaseOptions): Promise<Record<string, unknown>> {
  const settings = { ...latencySettings, ...o.overrides };
  const profileDir = o.profileDir ? join(o.profileDir, 'latency') : undefined;
  const d = new BenchDeployment(services.addresses, settings, profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []);
  const WARMUP_S = 5;
  const POLL_MS = 20;
  try {
    process.stderr.write(`bench: kafka: latency run (${d.id}) starting ship and detect\n`);
    await d.start();
    const total = Math.round(o.rate * o.seconds);
    const every = Math.max(1, Math.round(o.rate / o.markersPerSec));
    const lines = generateLines({ lines: total, seed: o.seed + 1 });
    const markers: Marker[] = [];
    const byAccount = new Map<string, Marker>();
    const prefix = `${d.id}-lat`;
    let logTs = 0;

    const hops = o.hops ? await watchHops(d, prefix, byAccount) : undefined;

    // Poller: one query per table per cycle, for the markers not seen yet.
    let polling = true;
    const cycles: number[] = [];
    const pollErrors: string[] = [];
    const poller = (async () => {
      let last = now();
      while (polling) {
        const pending = markers.filter((m) => m.findingAt === undefined || m.eventAt === undefined);
        if (pending.length > 0) {
          const since = Math.min(...pending.map((m) => m.logTs));
          try {
            const [f, e] = await Promise.all([
              d.query<{ entity_id: string }>(`SELECT entity_id FROM findings WHERE ts >= toDateTime(${sqlInt(Math.floor(since / 1000))}) AND detector = 'plaintext-auth' AND entity_id LIKE ${sqlString(`${prefix}%`)}`),
              d.query<{ account: string }>(`SELECT account FROM events WHERE host = ${sqlString(SHIP_HOST)} AND ts >= toDateTime(${sqlInt(Math.floor(since / 1000))}) AND kind = 'auth' AND account LIKE ${sqlString(`${prefix}%`)}`),
            ]);
            const seen = now();
            for (const r of f) {
              const m = byAccount.get(r.entity_id);
              if (m && m.findingAt === undefined) m.findingAt = seen;
            }
            for (const r of e) {
              const m = byAccount.get(r.account);
              if (m && m.eventAt === undefined) m.eventAt = seen;
            }
          } catch (err) {
            if (pollErrors.length < 5) pollErrors.push((err as Error).message);
          }
        }
        const t = now();
        cycles.push(t - last);
        last = t;
        await sleep(POLL_MS);
      }
    })();

    const cpu = new CpuMeter({ ...d.pids(), ...services.pids });
    cpu.begin();
    const fd = openSync(d.input, 'a');
    const t0 = now();
    let written = 0;
    let writes = 0;
    let behindMax = 0;
    try {
      process.stderr.write(`bench: kafka: writing ${o.rate} lines/s for ${o.seconds} s, a marker every ${every} lines\n`);
      while (written < total) {
        const due = Math.min(total, Math.floor(((now() - t0) / 1000) * o.rate));
        if (due > written) {
          behindMax = Math.max(behindMax, due - written);
          let chunk = '';
          const batch: Marker[] = [];
          for (; written < due; written++) {
            const next = lines.next();
            if (next.done) break;
            const ts = logTimeOf(next.value, 2026);
            if (ts !== undefined && ts > logTs) logTs = ts;
            if (written % every === every - 1) {
              const k = markers.length + batch.length;
              const account = `${prefix}${k}@example.com`;
              const ip = `203.0.113.${1 + (k % 250)}`;
              const handOff = partitionFor(routeKey(accountRoute(account)), settings.partitions) !== partitionFor(routeKey(ipRoute(ip)), settings.partitions);
              const m: Marker = { account, ip, handOff, logTs, writtenAt: 0 };
              chunk += markerLine(m, markers.length + batch.length) + '\n';
              batch.push(m);
            } else {
              chunk += next.value + '\n';
            }
          }
          writeSync(fd, chunk);
          writes++;
          const t = now();
          for (const m of batch) {
            m.writtenAt = t;
            markers.push(m);
            byAccount.set(m.account, m);
          }
        }
        d.assertRunning();
        await sleep(5);
      }
    } finally {
      closeSync(fd);
    }
    const writeSeconds = (now() - t0) / 1000;
    const usage = cpu.end();
    // Stragglers: wait until every marker is stored, or give up after 30 s.
    const until = now() + 30_000;
    while (now() < until && markers.some((m) => m.findingAt === undefined || m.eventAt === undefined)) await sleep(50);
    polling = false;
    await poller;
    await hops?.stop();
    const dm = await d.workerMetrics();
    const pids = d.pids();
    await d.stop();
    const profile = profileDir ? profilesOf(profileDir, pids) : undefined;
    const steady = markers.filter((m) => m.writtenAt - t0 >= WARMUP_S * 1000);
    const lat = (ms: Marker[], k: 'findingAt' | 'eventAt') => ms.filter((m) => m[k] !== undefined).map((m) => m[k]! - m.writtenAt);
    const sortedCycles = [...cycles].sort((a, b) => a - b);
    return {
      id: d.id,
      targetLinesPerSec: o.rate,
      writtenLines: written,
      writeSeconds: round1(writeSeconds),
      achievedLinesPerSec: Math.round(written / writeSeconds),
      writes,
      writerMaxBehindLines: behindMax,
      markers: markers.length,
      markerEveryLines: every,
      warmupSeconds: WARMUP_S,
      note: `latency = first time a poll of ClickHouse saw the row − time the marker line's write() returned; polls run back to back with ${POLL_MS} ms pauses, so each value is high by at most one poll cycle; markers in the first ${WARMUP_S} s (group and caches warming) are left out of the steady numbers`,
      pollCycleMs: { p50: Math.round(sortedCycles[Math.floor(sortedCycles.length / 2)] ?? 0), p99: Math.round(sortedCycles[Math.floor(sortedCycles.length * 0.99)] ?? 0) },
      findingLatency: { ...percentiles(lat(steady, 'findingAt')), missing: steady.filter((m) => m.findingAt === undefined).length },
      eventLatency: { ...percentiles(lat(steady, 'eventAt')), missing: steady.filter((m) => m.eventAt === undefined).length },
      hops: !hops ? { note: 'not watched: --kafka-hops adds two consumers of the topics that time each marker per hop, at a cost in CPU (and so in latency) of their own' } : {
        writeToLinesTopic: percentiles(steady.filter((m) => m.linesAt !== undefined).map((m) => m.linesAt! - m.writtenAt)),
        linesToEventsTopic: percentiles(steady.filter((m) => m.linesAt !== undefined && m.itemsAt !== undefined).map((m) => m.itemsAt! - m.linesAt!)),
        eventsTopicToEventRow: percentiles(steady.filter((m) => m.itemsAt !== undefined && m.eventAt !== undefined).map((m) => m.eventAt! - m.itemsAt!)),
        note: 'where a marker\'s event time goes: ship (poll, send, ack), parse stage (fetch, parse, transaction commit), detect stage and ClickHouse sink (fetch, flush, insert); seen by the bench\'s own consumers, which fetch with 50 ms waits',
      },
      findingLatencyByPath: {
        samePartition: percentiles(lat(steady.filter((m) => !m.handOff), 'findingAt')),
        handOff: percentiles(lat(steady.filter((m) => m.handOff), 'findingAt')),
        note: 'plaintext-auth judges a login in the IP\'s partition and reports it in the account\'s: when they differ the finding waits for a hand-off through the events topic',
      },
      allMarkers: { finding: percentiles(lat(markers, 'findingAt')), event: percentiles(lat(markers, 'eventAt')) },
      findingLatencyOverTime: overTime(markers, t0),
      findingsStored: metricSum(dm, 'floodgate_findings_total'),
      clickhouseInserts: insertStats(dm),
      checkpoints: metricSum(dm, 'floodgate_checkpoints_total'),
      ...(settings.splitStages || (settings.detectWorkers ?? 1) > 1 ? {} : { detectEventLoopDelayMs: loopDelayOf(dm) }),
      ...(pollErrors.length > 0 ? { pollErrors } : {}),
      cpu: usage,
      settings,
      ...(profile ? { profile } : {}),
    };
  } finally {
    await d.stop();
    if (!o.keep) await d.remove();
  }
}
