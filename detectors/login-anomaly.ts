/**
 * login-anomaly: where an account logs in from.
 *
 * Reads successful logins (`auth` events with an account and an IP, from any
 * protocol) and SMTP AUTH submissions (`smtp.client` with a SASL user: the
 * account is sending). IPs are compared by network (/24 for IPv4, /48 for IPv6).
 *
 * Signals:
 * - `many-networks`: an account logs in from many distinct networks within a
 *   short window (a stolen password used from a botnet or several spam hosts).
 * - `new-network`: an account with a history logs in from a network never
 *   seen for it. Alone it is weak (travel, a new ISP): severity low. When the
 *   account *sends* mail from that network (SMTP AUTH from it, or within
 *   `sendWithinMs` of the login) it is the stolen-password pattern: high.
 *   An account without history (first seen less than `minHistoryMs` ago and
 *   fewer than `minHistoryLogins` logins) is learning, never "new network".
 *
 * Logins from loopback and our own mail hosts (webmail submitting from the
 * mailbox server, proxies) are never anomalies and are not learnt.
 * Accounts whose known networks fill `maxNetworksPerAccount` (roaming mobile
 * users) stop producing `new-network` findings: every network is new for them.
 */
import { z } from 'zod';
import type { Source } from '../src/core/record.js';
import type { Event } from '../src/core/events.js';
import type { Evidence, Finding, Severity } from '../src/detect/finding.js';
import { networkOf } from '../src/detect/site.js';
import type { ValueCodec } from '../src/detect/windows.js';
import { clampScore, evidence, fmtDuration, isAccountLogin, normAccount, passCooldown } from './account-util.js';
import { defineDetector } from './types.js';

const DAY = 86_400_000;

const config = z.object({
  /** Window for counting an account's distinct networks. */
  networksWindowMs: z.number().int().positive().default(3_600_000),
  /** `many-networks` when an account logs in from at least this many distinct networks in the window. */
  minNetworks: z.number().int().min(2).default(4),
  /** How long a network stays known for an account after its last login from it. */
  knownNetworksMs: z.number().int().positive().default(30 * DAY),
  /** Networks remembered per account; past it the account counts as roaming (no `new-network`). */
  maxNetworksPerAccount: z.number().int().positive().default(20),
  /** An account has a history once it was first seen at least this long ago... */
  minHistoryMs: z.number().int().nonnegative().default(3 * DAY),
  /** ...or after this many logins. */
  minHistoryLogins: z.number().int().positive().default(20),
  /** Sending from a new network within this long after the first login from it raises the severity. */
  sendWithinMs: z.number().int().positive().default(15 * 60_000),
  /** Re-report `many-networks` for an account only after this long (or when the severity rises). */
  cooldownMs: z.number().int().positive().default(6 * 3_600_000),
  /** Re-report the same new network of an account only after this long (or when the severity rises). */
  newNetworkCooldownMs: z.number().int().positive().default(DAY),
  /** Most accounts tracked at once (least recently active are evicted). */
  maxKeys: z.number().int().positive().default(100_000),
});

/**
 * An account's login history: when it was first seen and how many logins
 * since, as one sample of (first: `t`, logins: `i`) in typed columns (an
 * object per account was long-lived heap). Snapshots from when it was a
 * Recent of {first, n} restore into it.
 */
const HISTORY_FIELDS = 'ti';
const historyFromRecent = (v: unknown) => {
  const h = v as { first?: unknown; n?: unknown };
  return typeof h.first === 'number' && typeof h.n === 'number' ? [h.first, h.n] : undefined;
};

/**
 * Evidence samples of an account's new networks, kept compactly (no note
 * string per login; the note is built when a finding is emitted), the first
 * MAX_SAMPLES - 1 and the newest: file, offset, ts, ip, protocol, sending (0/1);
 * offset and time in 32-bit cells, the IP in bytes, the protocol once in the store's string table, the flag
 * in 32 bits (see Samples).
 */
const SAMPLE_FIELDS = 'sutcsi';
const MAX_SAMPLES = 8;
type SampleRows = (string | number)[][];

/**
 * IPv4 /24 networks as networkOf writes them (`a.b.c.0/24`, octets in
 * decimal without leading zeros) ⇄ a·2^16 + b·2^8 + c. Anything else (IPv6,
 * a name) has no code and stays a string. The distinct networks of 100,000
 * accounts are up to a million: as numbers they hold no strings.
 */
export const ipv4NetworkCodec: ValueCodec = {
  encode(v: string): number {
    const n = v.length;
    if (n < 10 || n > 16 || !v.endsWith('.0/24')) return -1;
    let code = 0;
    let i = 0;
    for (let octet = 0; octet < 3; octet++) {
      const from = i;
      let x = 0;
      for (; i < n; i++) {
        const c = v.charCodeAt(i) - 48;
        if (c < 0 || c > 9) break;
        x = x * 10 + c;
      }
      const digits = i - from;
      if (digits === 0 || digits > 3 || (digits > 1 && v.charCodeAt(from) === 48) || x > 255 || v.charCodeAt(i) !== 46) return -1;
      i++; // the dot
      code = code * 256 + x;
    }
    return i === n - 4 ? code : -1; // then exactly `0/24`
  },
  decode(c: number): string {
    return `${c >>> 16}.${(c >>> 8) & 255}.${c & 255}.0/24`;
  },
};

function noteOf(account: string, ip: string, protocol: string, sending: boolean): string {
  const how = sending ? `sent mail (SMTP AUTH, ${protocol})` : `logged in (${protocol})`;
  return `${account} ${how} from ${ip} (${networkOf(ip)})`;
}

function expandSamples(account: string, rows: SampleRows): Evidence[] {
  return rows.map((r) => ({ file: r[0] as string, offset: r[1] as number, ts: r[2] as number, note: noteOf(account, r[3] as string, r[4] as string, r[5] === 1) }));
}

function samplesOrNow(rows: SampleRows | undefined, account: string, ev: () => Evidence): Evidence[] {
  return rows !== undefined ? expandSamples(account, rows) : [ev()];
}

interface Pending {
  net: string;
  ip: string;
  t: number;
  protocol: string;
  ev: Evidence;
}

export const loginAnomalyDetector = defineDetector({
  id: 'login-anomaly',
  description: 'An account logs in from many networks at once, or from a network never seen for it (worse when it then sends mail).',
  config,
  events: ['auth', 'smtp.client'],
  reads: isAccountLogin,
  messages: false,
  create(cfg, { store, site, emit, owner }) {
    const maxKeys = cfg.maxKeys;
    const recentNets = store.distinct('networks', { windowMs: cfg.networksWindowMs, maxKeys, maxPerKey: Math.max(32, cfg.minNetworks * 4), codec: ipv4NetworkCodec });
    const netEv = store.samples('network-evidence', { ttlMs: cfg.networksWindowMs, maxKeys, size: MAX_SAMPLES, fields: SAMPLE_FIELDS, keep: 'first-and-newest' });
    const row: (string | number)[] = ['', 0, 0, '', '', 0]; // reused: no allocation per login
    // only counted and tested, never listed: hashes, not the networks (30 days of them per account)
    const known = store.distinct('known', { windowMs: cfg.knownNetworksMs, maxKeys, maxPerKey: cfg.maxNetworksPerAccount, keepValues: false });
    const history = store.samples('history', { ttlMs: cfg.knownNetworksMs, maxKeys, size: 1, fields: HISTORY_FIELDS, fromRecent: historyFromRecent });
    const hist: (string | number)[] = [0, 0]; // read into and written from: no allocation per login
    const pending = store.recent<Pending>('pending', { ttlMs: cfg.sendWithinMs, maxKeys });
    const cool = store.recent<number>('cooldown', { ttlMs: cfg.cooldownMs, maxKeys });
    const newCool = store.recent<number>('new-cooldown', { ttlMs: cfg.newNetworkCooldownMs, maxKeys });

    function finding(
      account: string,
      ip: string,
      ts: number,
      signal: 'many-networks' | 'new-network',
      severity: Severity,
      score: number,
      summary: string,
      window: Record<string, unknown>,
      ev: Evidence[],
    ): Finding {
      return {
        type: 'finding',
        detector: 'login-anomaly',
        entity: { kind: 'account', id: account },
        severity,
        score: clampScore(score),
        ts,
        signals: [signal],
        summary,
        window,
        evidence: ev.slice(0, 10),
        account,
        ip,
      };
    }

    function login(account: string, ip: string, ts: number, src: Source, sending: boolean, protocol: string): void {
      // all of it is the account's (its networks, history, pending login): its delivery only
      if (site.isMailHost(ip) || !owner.account(account)) return;
      const net = networkOf(ip);
      // built only when a finding needs it
      let evBuilt: Evidence | undefined;
      const ev = (): Evidence => (evBuilt ??= evidence(src, ts, noteOf(account, ip, protocol, sending)));

      // history before this login
      const seen = history.latest(account, ts, hist);
      const first = seen ? (hist[0] as number) : ts;
      const earlier = seen ? (hist[1] as number) : 0; // logins before this one
      const hasHistory = seen && (ts - first >= cfg.minHistoryMs || earlier >= cfg.minHistoryLogins);
      hist[0] = first;
      hist[1] = earlier + 1;
      history.add(account, ts, hist);
      const k = known.add(account, net, ts);

      // many networks in a short window
      const r = recentNets.add(account, net, ts);
      if (r.isNew) {
        row[0] = src.file;
        row[1] = src.offset;
        row[2] = ts;
        row[3] = ip;
        row[4] = protocol;
        row[5] = sending ? 1 : 0;
        netEv.add(account, ts, row);
      }
      if (r.count >= cfg.minNetworks) {
        const severity: Severity = r.count >= cfg.minNetworks * 2 ? 'high' : 'medium';
        if (passCooldown(cool, account, ts, severity)) {
          const nets = recentNets.values(account, ts);
          emit(
            finding(
              account,
              ip,
              ts,
              'many-networks',
              severity,
              45 + Math.min(35, (r.count - cfg.minNetworks + 1) * 5),
              `${account} logged in from ${r.count}${r.capped ? '+' : ''} distinct networks in ${fmtDuration(cfg.networksWindowMs)} ` +
                `(threshold ${cfg.minNetworks}), e.g. ${nets.slice(-5).join(', ')}`,
              { networks: r.count, capped: r.capped, threshold: cfg.minNetworks, windowMs: cfg.networksWindowMs, sampleNetworks: nets.slice(-8) },
              samplesOrNow(netEv.get(account, ts), account, ev),
            ),
          );
        }
      }

      // a network never seen for this account
      if (k.isNew && !k.capped && hasHistory) {
        const ageDays = Math.floor((ts - first) / DAY);
        const base = { network: net, knownNetworks: k.count - 1, historyLogins: earlier, historyDays: ageDays, sendWithinMs: cfg.sendWithinMs };
        if (sending) {
          if (passCooldown(newCool, `${account}|${net}`, ts, 'high')) {
            emit(
              finding(
                account,
                ip,
                ts,
                'new-network',
                'high',
                65,
                `${account} sent mail via SMTP AUTH from ${ip} (${net}), a network not seen for it in ${fmtDuration(cfg.knownNetworksMs)} ` +
                  `(${k.count - 1} known networks, ${earlier} earlier logins)`,
                { ...base, sending: true },
                [ev()],
              ),
            );
          }
        } else {
          pending.set(account, ts, { net, ip, t: ts, protocol, ev: ev() });
          if (passCooldown(newCool, `${account}|${net}`, ts, 'low')) {
            emit(
              finding(
                account,
                ip,
                ts,
                'new-network',
                'low',
                25,
                `${account} logged in (${protocol}) from ${ip} (${net}), a network not seen for it in ${fmtDuration(cfg.knownNetworksMs)} ` +
                  `(${k.count - 1} known networks, ${earlier} earlier logins)`,
                { ...base, sending: false },
                [ev()],
              ),
            );
          }
        }
        return;
      }

      // sending soon after a login from a new network
      if (sending) {
        const p = pending.get(account, ts);
        if (p !== undefined && p.net === net) {
          pending.delete(account);
          if (passCooldown(newCool, `${account}|${net}`, ts, 'high')) {
            const mins = Math.round((ts - p.t) / 60_000);
            emit(
              finding(
                account,
                ip,
                ts,
                'new-network',
                'high',
                65,
                `${account} sent mail from ${ip} (${net}) ${mins} min after its first login (${p.protocol}) from that new network`,
                { network: net, firstLogin: p.t, firstLoginIp: p.ip, delayMs: ts - p.t, sendWithinMs: cfg.sendWithinMs, sending: true },
                [p.ev, ev()],
              ),
            );
          }
        }
      }
    }

    function onEvent(e: Event): void {
      if (e.kind === 'auth') {
        if (e.outcome !== 'success' || e.ip === undefined) return;
        const account = normAccount(e.account);
        if (account === undefined) return;
        login(account, e.ip, e.ts, e.src, false, e.protocol);
      } else if (e.kind === 'smtp.client') {
        const account = normAccount(e.account);
        if (account === undefined) return;
        login(account, e.ip, e.ts, e.src, true, e.service);
      }
    }

    return { onEvent };
  },
});
