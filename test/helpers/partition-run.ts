/**
 * Test helper for test/route-partition.test.ts: run a corpus case through
 * the standalone DetectPipeline (as `floodgate replay` does), or split by
 * route over N engines (as distributed mode's detect stage does).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FloodgateConfig } from '../../src/config/config.js';
import type { Event } from '../../src/core/events.js';
import { Correlator } from '../../src/correlator/correlator.js';
import type { Message } from '../../src/correlator/message.js';
import type { DnsLookup } from '../../src/detect/dns.js';
import { DetectionEngine, detectionReads, type HandOff } from '../../src/detect/engine.js';
import type { Finding } from '../../src/detect/finding.js';
import { accountKey, routeKey, routesOf, type DeliveryOwner, type Delivery, type Route } from '../../src/detect/route.js';
import { SiteKnowledge } from '../../src/detect/site.js';
import { WindowStore } from '../../src/detect/windows.js';
import { ZoneClock } from '../../src/envelope/zone.js';
import { DetectPipeline } from '../../src/pipeline/detect-pipeline.js';
import { LineParser } from '../../src/pipeline/line-parser.js';
import { mergeInputs, type MergeInput } from '../../src/pipeline/merge.js';
import { Policy, type Decision } from '../../src/policy/policy.js';
import type { CorpusCase } from './partition-corpus.js';
import { partitionFor } from '../../src/distributed/kafka.js';

let dir: string | undefined;

/** Write the case's inputs to temp files (one per input, with its default host). */
export function writeInputs(c: CorpusCase): MergeInput[] {
  dir ??= mkdtempSync(join(tmpdir(), 'floodgate-partition-'));
  return c.inputs.map((inp, i) => {
    const path = join(dir!, `${c.name}-${i}.log`);
    writeFileSync(path, inp.lines.join('\n') + '\n');
    return { path, host: inp.host };
  });
}

export const mergeOptions = { zone: new ZoneClock('UTC'), year: 2026 };

export async function runStandalone(inputs: MergeInput[], cfg: FloodgateConfig, dns?: DnsLookup): Promise<{ findings: Finding[]; decisions: Decision[] }> {
  const findings: Finding[] = [];
  const decisions: Decision[] = [];
  const p = new DetectPipeline(cfg, { onFinding: (f) => findings.push(f), onDecision: (d) => decisions.push(d) }, dns ? { dns } : {});
  await mergeInputs(inputs, p.lines, (rec) => p.feed(rec), mergeOptions);
  await p.finish();
  return { findings, decisions };
}

/** An event, a correlated message, a submission or a held message's settled recipients, in the order the standalone engine sees them. */
export type Item =
  | { event: Event; message?: undefined; submission?: undefined; settled?: undefined }
  | { message: Message; event?: undefined; submission?: undefined; settled?: undefined }
  | { submission: Message; event?: undefined; message?: undefined; settled?: undefined }
  | { settled: Message; event?: undefined; message?: undefined; submission?: undefined };

/** Parse and correlate once (what stage A does), keeping DetectPipeline's order: a message the event completes comes before the event. */
export async function collectItems(inputs: MergeInput[], cfg: FloodgateConfig): Promise<Item[]> {
  const items: Item[] = [];
  const lp = new LineParser();
  const correlator = new Correlator((m) => items.push({ message: m }), {
    idleTimeoutMs: cfg.correlator.idleTimeoutMs,
    maxEntries: cfg.correlator.maxEntries,
    // A copy as it stands: the message goes on changing, and the parse stage sends its JSON of this moment.
    onSubmission: (m) => items.push({ submission: structuredClone(m) }),
    heldAfterMs: cfg.correlator.heldAfterMs,
    onSettled: (m) => items.push({ settled: structuredClone(m) }),
  });
  const out: Event[] = [];
  await mergeInputs(
    inputs,
    lp,
    (rec) => {
      out.length = 0;
      lp.dispatchRecord(rec, out);
      for (const e of out) {
        correlator.push(e);
        items.push({ event: e });
      }
    },
    mergeOptions,
  );
  correlator.flush();
  return items;
}

/**
 * The partition the parse stage sends a route to (Kafka's murmur2 of its
 * key): the split groups entities as a deployment does. An FNV stand-in
 * grouped the bench log's accounts otherwise and hid a difference between
 * a partition's window store and standalone's (see test/late-message.test.ts).
 */
export function partitionOf(route: Route, n: number): number {
  return partitionFor(routeKey(route), n);
}

/** Whether a delivery on `route` owns `entity`, by the rule of src/detect/route.ts. */
export function routeOwns(route: Delivery | undefined, entity: { kind: 'account' | 'ip'; id: string }): boolean {
  if (route === undefined) return false;
  if (route.kind === 'all') return true;
  return entity.kind === 'account' ? route.kind === 'account' && accountKey(entity.id) === route.key : route.kind === 'ip' && entity.id === route.key;
}

export interface SplitOptions {
  /** Wrap every window-store structure and report each keyed access (see auditStore). */
  audit?: (engine: number, structure: string, key: string, owner: DeliveryOwner) => void;
  /** Send hand-offs through the test's router with a JSON round trip (as over Kafka); false: each engine's default (back into itself). */
  routeHandOffs?: boolean;
  dns?: DnsLookup;
}

export interface SplitResult {
  findings: Finding[];
  decisions: Decision[];
  /** Findings emitted outside a delivery owning their entity, or in an engine that does not own it. */
  strays: string[];
  handOffs: number;
  handOffsDropped: number;
  deliveries: number;
  /** Events left undelivered because detection does not read them (detectionReads). */
  notRouted: number;
}

/**
 * The split path: every item delivered once per route to engine
 * partitionOf(route, n), each engine with its own window store and policy,
 * all sharing one SiteKnowledge.
 */
export async function runSplit(items: readonly Item[], cfg: FloodgateConfig, n: number, opts: SplitOptions = {}): Promise<SplitResult> {
  const site = new SiteKnowledge(cfg.site);
  const r: SplitResult = { findings: [], decisions: [], strays: [], handOffs: 0, handOffsDropped: 0, deliveries: 0, notRouted: 0 };
  const engines: DetectionEngine[] = [];
  for (let k = 0; k < n; k++) {
    const policy = new Policy(cfg.policy);
    const store = new WindowStore();
    const audit = opts.audit;
    if (audit) auditStore(store, (structure, key) => audit(k, structure, key, engines[k]!.owner));
    const engine: DetectionEngine = new DetectionEngine({
      detectors: cfg.enabledDetectors,
      configs: cfg.detectorConfigs,
      site,
      store,
      ...(opts.dns ? { dns: opts.dns } : {}),
      onFinding: (f) => {
        const cur = engine.owner.current;
        if (!routeOwns(cur, f.entity) || cur === undefined || cur.kind === 'all' || partitionOf(cur, n) !== k) {
          r.strays.push(`${f.detector} ${f.entity.kind}=${f.entity.id} in engine ${k} during ${JSON.stringify(cur)}`);
        }
        r.findings.push(f);
        const d = policy.onFinding(f);
        if (d) r.decisions.push(d);
      },
      ...(opts.routeHandOffs
        ? {
            onHandOff: (h: HandOff) => {
              r.handOffs++;
              engines[partitionOf(h.route, n)]!.onHandOff(JSON.parse(JSON.stringify(h)) as HandOff);
            },
          }
        : {}),
    });
    engines.push(engine);
  }
  // As the parse stage does when it stores: an event no detector (nor site knowledge) reads is not delivered.
  const reads = detectionReads(cfg.enabledDetectors);
  for (const it of items) {
    if (it.event !== undefined && !reads(it.event)) {
      r.notRouted++;
      continue;
    }
    const routes = routesOf(it.event ?? it.message ?? it.submission ?? it.settled!);
    for (const route of routes) {
      r.deliveries++;
      const e = engines[partitionOf(route, n)]!;
      if (it.event) e.onEvent(it.event, route);
      else if (it.message) e.onMessage(it.message, route);
      else if (it.submission) e.onSubmission(it.submission, route);
      else e.onSettled(it.settled!, route);
    }
  }
  await Promise.all(engines.map((e) => e.drain()));
  for (const e of engines) r.handOffsDropped += e.handOffsDropped;
  return r;
}

const KEYED_METHODS = new Set(['add', 'set', 'delete', 'reset', 'get', 'count', 'values', 'has']);

/** Report every keyed call (first argument: the key) on every structure the store hands out. */
function auditStore(store: WindowStore, onKey: (structure: string, key: string) => void): void {
  const register = store.register.bind(store) as (name: string, make: (...a: never[]) => object) => object;
  (store as unknown as { register: typeof register }).register = (name, make) =>
    register(name, (...a: never[]) => {
      const s = make(...a);
      return new Proxy(s, {
        get(target, prop) {
          const v: unknown = Reflect.get(target, prop, target);
          if (typeof v !== 'function' || typeof prop !== 'string' || !KEYED_METHODS.has(prop)) return v;
          const fn = v as (...args: unknown[]) => unknown;
          return (...args: unknown[]) => {
            if (typeof args[0] === 'string') onKey(name, args[0]);
            return fn.apply(target, args);
          };
        },
      });
    });
}
