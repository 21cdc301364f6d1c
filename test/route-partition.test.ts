/**
 * Detection partitioned by entity (distributed mode's re-keying) gives the
 * same findings and decisions as standalone.
 *
 * Every scenario, decoy, the demo day and a generated two-host log are run
 * (a) through the standalone DetectPipeline and (b) split: parsed and
 * correlated once, then each event and message delivered once per route
 * (src/detect/route.ts) to the engine of its Kafka partition (murmur2 of
 * routeKey, N partitions), each engine with its own window store and
 * policy, all sharing one SiteKnowledge; hand-offs
 * (a listed IP's login reported on the account) go through a JSON round
 * trip to the engine owning their route. N = 1, 3, 7.
 *
 * And the rule itself, checked on every call: no finding is emitted, and no
 * window-store key is touched, except in the delivery (and the engine)
 * that owns its entity.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as S from '../bench/scenarios.js';
import { createDnsLookup } from '../src/detect/dns-lookup.js';
import type { FloodgateConfig } from '../src/config/config.js';
import { DetectionEngine } from '../src/detect/engine.js';
import type { Finding } from '../src/detect/finding.js';
import { ALL_ROUTES, accountKey, isPrimaryRoute, routeKey, routesOf, type Route } from '../src/detect/route.js';
import { SiteKnowledge } from '../src/detect/site.js';
import type { Decision } from '../src/policy/policy.js';
import { detectors } from '../detectors/index.js';
import type { Event } from '../src/core/events.js';
import type { Message } from '../src/correlator/message.js';
import { partitionCorpus, type CorpusCase } from './helpers/partition-corpus.js';
import { collectItems, partitionOf, routeOwns, runSplit, runStandalone, writeInputs, type Item } from './helpers/partition-run.js';
import { denyRealDns, startDnsServer, type TestDnsServer } from './helpers/dns-server.js';
import { scenarioConfig } from './helpers/scenario-run.js';

type Owned = { kind: 'account' | 'ip'; id: string } | 'any' | 'primary';

const A = (id: string): Owned => ({ kind: 'account', id });
const I = (id: string): Owned => ({ kind: 'ip', id });
const after = (sep: string, n = 1) => (k: string): string => k.split(sep).slice(n).join(sep);
/** `${kind}:${id}` (spf outbound) */
const kindId = (k: string): Owned => (k.startsWith('account:') ? A(k.slice(8)) : I(k.slice(3)));

/**
 * Who owns each window-store key: the route rule per structure. A new
 * structure must be added here (the audit fails on an unknown one).
 */
const OWNER_OF_KEY: Record<string, (key: string) => Owned> = {
  'send-flood.short': A,
  'send-flood.long': A,
  'send-flood.msgs-per-period': A,
  'send-flood.rcpts-per-period': A,
  'send-flood.cooldown': A,
  'send-flood.samples': A,
  'sender-mismatch.forged': A,
  'sender-mismatch.foreign': A,
  'sender-mismatch.domains': A,
  'sender-mismatch.samples': A,
  'sender-mismatch.cooldown': A,
  'recipient-fanout.domains': A,
  'recipient-fanout.recipients': A,
  'recipient-fanout.new': A,
  'recipient-fanout.local': A,
  'recipient-fanout.new-domains': A,
  'recipient-fanout.new-recipients': A,
  'recipient-fanout.cooldown': A,
  'recipient-fanout.samples': A,
  'bounce-ratio.recipients': A,
  'bounce-ratio.cooldown': A,
  'bounce-ratio.samples': A,
  'auth-attack.ip-accounts': I,
  'auth-attack.ip-failures': I,
  'auth-attack.ip': I,
  'auth-attack.ip-samples': I,
  'auth-attack.account-ips': A,
  'auth-attack.account-failures': A,
  'auth-attack.streak': A,
  // `${signal}|${kind}|${id}`
  'auth-attack.cooldown': (k) => (k.split('|')[1] === 'account' ? A : I)(after('|', 2)(k)),
  'login-anomaly.networks': A,
  'login-anomaly.network-evidence': A,
  'login-anomaly.known': A,
  'login-anomaly.history': A,
  'login-anomaly.pending': A,
  'login-anomaly.cooldown': A,
  // `${account}|${network}`
  'login-anomaly.new-cooldown': (k) => A(k.slice(0, k.lastIndexOf('|'))),
  'trusted-relay.relay-denied': I,
  'trusted-relay.relay-denied-targets': I,
  'trusted-relay.relay-denied-samples': I,
  // `${signal}|${ip}`
  'trusted-relay.relayed': (k) => I(after('|')(k)),
  'trusted-relay.alerted': (k) => I(after('|')(k)),
  'rbl.rejects-ip': I,
  'rbl.lists-ip': I,
  'rbl.listed': I,
  'rbl.active': I,
  'rbl.pending': I,
  // counts per blocklist, shown in a finding's window: no entity's
  'rbl.rejects-list': () => 'any',
  'rbl.dns-errors': () => 'any',
  // `rbl-rejected|${ip}` or `listed-ip|${account}|${ip}`
  'rbl.alerted': (k) => (k.startsWith('rbl-rejected|') ? I(after('|')(k)) : A(k.split('|')[1]!)),
  'spf.inbound-fails': I,
  'spf.inbound-domains': I,
  'spf.inbound-foreign': () => 'primary',
  'spf.outbound-fails': kindId,
  'spf.outbound-domains': kindId,
  // per sender domain: a cache of DNS verdicts, the same in every partition
  'spf.verdicts': () => 'any',
  'spf.pending': () => 'any',
  'spf.dns-errors': () => 'any',
  // `spf-inbound-fail|${ip}` or `spf-outbound-fail|${kind}:${id}|${domain}`
  'spf.alerted': (k) => (k.startsWith('spf-inbound-fail|') ? I(after('|')(k)) : kindId(k.split('|')[1]!)),
  // `${host}|${ip}`
  'plaintext-auth.tls': (k) => I(after('|')(k)),
  'plaintext-auth.cooldown': A,
};

function entityRoute(o: { kind: 'account' | 'ip'; id: string }): Route {
  return o.kind === 'account' ? { kind: 'account', key: accountKey(o.id) } : { kind: 'ip', key: o.id };
}

/** A finding as compared across runs (what the brief names; evidence paths differ by temp file). */
function findingKey(f: Finding): string {
  return JSON.stringify([f.detector, f.entity.kind, f.entity.id, f.severity, f.score, f.ts, f.summary, f.signals, f.account ?? null, f.ip ?? null]);
}

function decisionKey(d: Decision): string {
  return JSON.stringify([d.entity.kind, d.entity.id, d.action, d.score, d.ts, d.hold, d.signals, d.detectors, d.reasons]);
}

const sorted = (xs: string[]): string[] => xs.slice().sort();

const cfg: FloodgateConfig = scenarioConfig();
const corpus: CorpusCase[] = partitionCorpus();

describe('routes', () => {
  const ev = (e: Partial<Event> & { kind: Event['kind'] }): Event => ({ ts: 1, host: 'mx1', program: 'p', src: { file: 'f', offset: 0 }, ...e }) as Event;

  it('an item about an account and an IP goes to both, the account first; one with neither goes by host', () => {
    expect(routesOf(ev({ kind: 'auth', source: 'zimbra', protocol: 'imap', outcome: 'success', account: ' Anna@Example.COM ', ip: '192.0.2.7' }))).toEqual([
      { kind: 'account', key: 'anna@example.com' },
      { kind: 'ip', key: '192.0.2.7' },
    ]);
    expect(routesOf(ev({ kind: 'smtp.reject', ip: '192.0.2.9', service: 'smtpd', action: 'reject', stage: 'RCPT', category: 'rbl', reason: 'x' }))).toEqual([{ kind: 'ip', key: '192.0.2.9' }]);
    expect(routesOf(ev({ kind: 'queue.removed', queueId: 'Q1' }))).toEqual([{ kind: 'host', key: 'mx1' }]);
    expect(routesOf(ev({ kind: 'smtp.client', queueId: 'Q', ip: '198.51.100.4', clientHost: 'h', service: 'submission', account: 'bob' }))).toEqual([
      { kind: 'account', key: 'bob' },
      { kind: 'ip', key: '198.51.100.4' },
    ]);
    const m = { host: 'mx2', queueId: 'Q', origin: 'smtp', recipients: [], firstTs: 1, lastTs: 1, hops: [], complete: true, end: 'removed', src: { file: 'f', offset: 0 } } as Message;
    expect(routesOf({ ...m, saslUser: 'Bob', clientIp: '198.51.100.4' })).toEqual([
      { kind: 'account', key: 'bob' },
      { kind: 'ip', key: '198.51.100.4' },
    ]);
    expect(routesOf({ ...m, clientIp: '198.51.100.4' })).toEqual([{ kind: 'ip', key: '198.51.100.4' }]);
    expect(routesOf(m)).toEqual([{ kind: 'host', key: 'mx2' }]);
    expect(routeKey({ kind: 'account', key: 'bob' })).toBe('a:bob');
    expect(routeKey({ kind: 'ip', key: '::1' })).toBe('i:::1');
    expect(routeKey({ kind: 'host', key: 'mx1' })).toBe('h:mx1');
    // an account spelled only with blanks keeps its spelling (detectors that do not trim still find one owner)
    expect(accountKey('  ')).toBe('  ');
  });

  it('the first route is the primary one, for every item of the corpus', async () => {
    const items = await collectItems(writeInputs(corpus.find((c) => c.name === 'g-listed-ip')!), cfg);
    let multi = 0;
    for (const it of items) {
      const item = it.event ?? it.message ?? it.submission ?? it.settled;
      const rs = routesOf(item);
      expect(rs.length).toBeGreaterThan(0);
      if (rs.length > 1) multi++;
      rs.forEach((r, i) => expect(isPrimaryRoute(item, r)).toBe(i === 0));
    }
    expect(multi).toBeGreaterThan(100);
  });

  it('a delivery owns only its own entity; ALL_ROUTES owns every one', () => {
    const e = new DetectionEngine({ detectors: [], site: new SiteKnowledge(), onFinding: () => {} });
    const o = e.owner;
    expect(o.account('x')).toBe(false); // between deliveries: nothing
    o.enter({ kind: 'account', key: 'anna@example.com' }, undefined);
    expect([o.account('Anna@Example.com'), o.account('bob'), o.ip('anna@example.com')]).toEqual([true, false, false]);
    o.enter({ kind: 'ip', key: '192.0.2.7' }, undefined);
    expect([o.ip('192.0.2.7'), o.ip('192.0.2.70'), o.account('192.0.2.7')]).toEqual([true, false, false]);
    o.enter(ALL_ROUTES, undefined);
    expect([o.account('any'), o.ip('any'), o.primary()]).toEqual([true, true, true]);
  });
});

describe('split by route = standalone', () => {
  const runs = new Map<string, { standalone: { findings: Finding[]; decisions: Decision[] }; items: Item[] }>();

  beforeAll(async () => {
    for (const c of corpus) {
      const inputs = writeInputs(c);
      runs.set(c.name, { standalone: await runStandalone(inputs, cfg), items: await collectItems(inputs, cfg) });
    }
  }, 600_000);

  it('the corpus exercises every detector and both kinds of decision', () => {
    const all = [...runs.values()];
    const seen = new Set(all.flatMap((r) => r.standalone.findings.map((f) => `${f.detector}:${f.signals.join(',')}`)));
    for (const s of [
      'send-flood:volume',
      'sender-mismatch:forged-sender',
      'recipient-fanout:fanout',
      'bounce-ratio:bounce-spike',
      'auth-attack:spraying',
      'auth-attack:brute-force',
      'auth-attack:guessed-password',
      'login-anomaly:new-network',
      'login-anomaly:many-networks',
      'trusted-relay:wide-trusted-network',
      'rbl:listed-ip',
      'spf:spf-inbound-fail',
      'plaintext-auth:plaintext-auth',
    ]) {
      expect(seen, s).toContain(s);
    }
    const actions = new Set(all.flatMap((r) => r.standalone.decisions.map((d) => `${d.entity.kind}:${d.action}`)));
    expect(actions).toContain('account:lock');
    expect(actions).toContain('ip:alert');
  });

  for (const n of [1, 3, 7]) {
    it(`N = ${n}: the same findings and decisions, every finding emitted by its entity's owner`, async () => {
      let handOffs = 0;
      let notRouted = 0;
      for (const c of corpus) {
        const { standalone, items } = runs.get(c.name)!;
        const split = await runSplit(items, cfg, n, { routeHandOffs: n > 1 });
        notRouted += split.notRouted;
        expect(split.strays, c.name).toEqual([]);
        expect(split.handOffsDropped, c.name).toBe(0);
        expect(sorted(split.findings.map(findingKey)), c.name).toEqual(sorted(standalone.findings.map(findingKey)));
        expect(sorted(split.decisions.map(decisionKey)), c.name).toEqual(sorted(standalone.decisions.map(decisionKey)));
        // and per entity, in the same order (what the policy saw)
        const perEntity = (xs: { entity: { kind: string; id: string } }[], key: (x: never) => string) => {
          const m = new Map<string, string[]>();
          for (const x of xs) {
            const k = `${x.entity.kind}:${x.entity.id}`;
            m.set(k, [...(m.get(k) ?? []), key(x as never)]);
          }
          return [...m].sort((a, b) => (a[0] < b[0] ? -1 : 1));
        };
        expect(perEntity(split.findings, findingKey), c.name).toEqual(perEntity(standalone.findings, findingKey));
        handOffs += split.handOffs;
      }
      if (n > 1) expect(handOffs).toBeGreaterThan(0); // listed-ip and cleartext logins crossed partitions
      // The same findings although the events detection does not read (queue bookkeeping, most deliveries) never arrived.
      expect(notRouted).toBeGreaterThan(1000);
    }, 600_000);
  }

  it('N = 7: every window-store key is touched only in the delivery and the engine owning its entity', async () => {
    const n = 7;
    const violations: string[] = [];
    let checked = 0;
    for (const name of ['g-listed-ip', 'two-mtas', 'listed-cleartext', 'd-spray', 'e-brute-force', 'f-trusted-relay', 'h-inbound-spf', 'demo-day']) {
      const { items, standalone } = runs.get(name)!;
      const split = await runSplit(items, cfg, n, {
        routeHandOffs: true,
        audit: (k, structure, key, owner) => {
          checked++;
          const rule = OWNER_OF_KEY[structure];
          if (rule === undefined) {
            violations.push(`${structure}: no ownership rule (add it to OWNER_OF_KEY)`);
            return;
          }
          const o = rule(key);
          if (o === 'any') return;
          const cur = owner.current;
          if (o === 'primary') {
            if (cur !== undefined && !owner.primary()) violations.push(`${structure}[${key}] outside the item's primary delivery`);
            return;
          }
          if (partitionOf(entityRoute(o), n) !== k) violations.push(`${structure}[${key}] in engine ${k}, owned by ${partitionOf(entityRoute(o), n)}`);
          else if (cur !== undefined && !routeOwns(cur, o)) violations.push(`${structure}[${key}] during ${JSON.stringify(cur)}`);
        },
      });
      expect(sorted(split.findings.map(findingKey)), name).toEqual(sorted(standalone.findings.map(findingKey)));
    }
    expect(violations.slice(0, 20)).toEqual([]);
    expect(checked).toBeGreaterThan(100_000);
  }, 600_000);

  it('a detector that skipped the owner check would be caught', async () => {
    // send-flood without its guard: both deliveries of a message (account and IP) count it
    const { items } = runs.get('b-own-flood')!;
    const leaky = detectors.map((d) =>
      d.id !== 'send-flood'
        ? d
        : {
            ...d,
            create: (c: unknown, deps: Parameters<typeof d.create>[1]) => d.create(c, { ...deps, owner: { account: () => true, ip: () => true, primary: () => true } }),
          },
    );
    const split = await runSplit(items, { ...cfg, enabledDetectors: leaky }, 3, { routeHandOffs: true });
    expect(split.strays.some((s) => s.startsWith('send-flood'))).toBe(true);
  }, 120_000);
});

describe('split by route with active DNS (loopback server): answers come back to the owner', () => {
  let undoDeny: () => void;
  let srv: TestDnsServer;
  beforeAll(async () => {
    undoDeny = denyRealDns();
    srv = await startDnsServer({
      '41.87.100.185.zen.spamhaus.org': { A: ['127.0.0.4'] },
      '42.87.100.185.zen.spamhaus.org': { A: ['127.0.0.3'] },
      'yahoo.com.tw': { TXT: ['v=spf1 include:_spf.yahoo.example -all'] },
      '_spf.yahoo.example': { TXT: ['v=spf1 ip4:67.195.204.0/22 ip4:98.136.0.0/16 -all'] },
    });
  });
  afterAll(async () => {
    await srv.close();
    undoDeny();
  });

  it('rbl (active) and outbound SPF: the same findings, emitted by the entity owner, through hand-offs', async () => {
    const { HOUR } = S;
    const EP = Date.UTC(2026, 10, 27, 10, 0, 0);
    const U = S.users(12);
    const log = new S.ScenarioLog(31);
    S.background(log, { start: EP - 30 * HOUR, end: EP + 2 * HOUR, users: U, inboundPerHour: 10 });
    // two accounts log in from one listed IP (one lookup, two waiters), a third from another
    S.loginAndSend(log, { account: U[4]!.account, ip: '185.100.87.41', start: EP, send: 10, paceMs: 15_000 });
    S.loginAndSend(log, { account: U[6]!.account, ip: '185.100.87.41', start: EP + 200, send: 5, paceMs: 15_000 });
    S.loginAndSend(log, { account: U[7]!.account, ip: '185.100.87.42', start: EP + 400, send: 5, paceMs: 15_000 });
    // forged yahoo.com.tw senders from two accounts: outbound SPF fails
    S.forgedSenderFlood(log, { account: U[5]!.account, ips: [U[5]!.ip], start: EP, count: 20, paceMs: 10_000 });
    S.forgedSenderFlood(log, { account: U[8]!.account, ips: [U[8]!.ip], start: EP + 5_000, count: 20, paceMs: 10_000 });
    const dnsCfg = scenarioConfig({ dns: { enabled: true, servers: [srv.address] } });
    const dns = () => createDnsLookup({ servers: [srv.address], timeoutMs: 2000, maxQueriesPerSecond: 100_000 });
    const inputs = writeInputs({ name: 'dns', inputs: [{ host: 'mx1', lines: log.render() }] });
    const standalone = await runStandalone(inputs, dnsCfg, dns());
    const async = standalone.findings.filter((f) => (f.detector === 'rbl' && f.window.how === 'active') || f.detector === 'spf');
    expect(async.filter((f) => f.detector === 'rbl').map((f) => f.entity.id).sort()).toEqual([U[4]!.account, U[6]!.account, U[7]!.account].sort());
    expect(async.filter((f) => f.detector === 'spf').map((f) => f.entity.id).sort()).toEqual([U[5]!.account, U[8]!.account].sort());
    const items = await collectItems(inputs, dnsCfg);
    for (const n of [1, 3, 7]) {
      const split = await runSplit(items, dnsCfg, n, { routeHandOffs: n > 1, dns: dns() });
      expect(split.strays, `N=${n}`).toEqual([]);
      expect(split.handOffsDropped).toBe(0);
      expect(sorted(split.findings.map(findingKey)), `N=${n}`).toEqual(sorted(standalone.findings.map(findingKey)));
      if (n > 1) expect(split.handOffs).toBeGreaterThanOrEqual(5);
    }
  }, 120_000);
});
