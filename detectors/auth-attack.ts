/**
 * auth-attack: password attacks, from every place a login is logged
 * (Postfix SMTP AUTH, saslauthd, Zimbra IMAP/POP/SOAP/ActiveSync, Dovecot).
 *
 * Signals:
 * - `spraying` (entity ip): one IP fails logins for many distinct accounts.
 * - `brute-force` (entity account): one account fails from many distinct IPs
 *   (distributed brute force), or simply fails very often; (entity ip): one IP
 *   fails very often, whatever the account (Postfix rarely logs the username).
 * - `guessed-password` (entity account): a login succeeds after a run of
 *   failures — the attack worked.
 *
 * A user's typo is not an attack: failures are counted per (account, IP)
 * and a success from that pair clears its count when it is below the
 * threshold, so "wrong password, wrong password, right password" reports nothing.
 *
 * One attempt often appears in several logs (Zimbra: the Postfix warning,
 * saslauthd, mailbox.log and audit.log; Dovecot: auth-worker and the login
 * process). Per-account counts merge failures of the same account from a
 * *different* log source within `dedupeMs` (keeping the IP when one copy
 * lacks it); distinct counts need no merging. Logins from our own mail
 * hosts / loopback (webmail, proxies) never count against an IP.
 */
import { z } from 'zod';
import type { Event, EventOf } from '../src/core/events.js';
import type { Evidence, Finding, Severity } from '../src/detect/finding.js';
import { clampScore, evidence, fmtDuration, normAccount, passCooldown, pushSample } from './account-util.js';
import { defineDetector } from './types.js';

const config = z.object({
  /** Spraying: one IP failing for at least this many distinct accounts... */
  sprayAccounts: z.number().int().positive().default(10),
  /** ...within this window. */
  sprayWindowMs: z.number().int().positive().default(600_000),
  /** Distributed brute force: one account failing from at least this many distinct IPs... */
  distributedIps: z.number().int().positive().default(10),
  /** ...within this window. */
  distributedWindowMs: z.number().int().positive().default(3_600_000),
  /** Plain brute force on an account: at least this many failures (merged across logs)... */
  accountFailures: z.number().int().positive().default(20),
  /** ...within this window. */
  accountWindowMs: z.number().int().positive().default(600_000),
  /** Brute force from one IP, any account (Postfix often omits the username): at least this many failures... */
  ipFailures: z.number().int().positive().default(30),
  /** ...within this window. */
  ipWindowMs: z.number().int().positive().default(600_000),
  /** Guessed password: a success after at least this many failures for the account... */
  guessFailures: z.number().int().positive().default(5),
  /** ...each less than this long after the previous one. */
  guessWindowMs: z.number().int().positive().default(3_600_000),
  /**
   * Failures of the same account from a different log source within this
   * long are one attempt logged twice (e.g. saslauthd + mailbox.log).
   */
  dedupeMs: z.number().int().nonnegative().default(2_000),
  /** Count Postfix `disconnect ... auth=0/N` summaries as IP failures (off: the warning lines already count). */
  countDisconnectFailures: z.boolean().default(false),
  /** A Postfix `client=..., sasl_username=` line (a mail accepted after SMTP AUTH) counts as a successful login. */
  smtpClientIsSuccess: z.boolean().default(true),
  /** After a report, the same entity and signal are reported again only after this long (or when the severity rises). */
  cooldownMs: z.number().int().positive().default(3_600_000),
  /** Most keys (accounts, IPs) tracked per structure; least recently active are evicted. */
  maxKeys: z.number().int().positive().default(200_000),
});

/** Failure run of one account, for `guessed-password`. Plain JSON (snapshot-able). */
interface Streak {
  /** Failures counted (merged across logs) since the last reset. */
  n: number;
  /** Failures that carried no IP (saslauthd). */
  noIp: number;
  /** Failures per IP, at most MAX_STREAK_IPS entries; more go to `overflow`. */
  ips: [string, number][];
  overflow: number;
  first: number;
  /** Last counted failure, for merging duplicates across logs. */
  last: number;
  lastOrigin: string;
  lastIp: string | null;
  ev: Evidence[];
}

/**
 * Per IP, in typed columns (a million IPs' objects were long-lived heap):
 * the last counted failure, as one sample of (origin: `s`, time: `t`), for
 * merging duplicates; and, from an IP's second failure on, sample lines as
 * (file, offset, ts, account or '') in a structure of their own, so one-off
 * IPs hold none. Snapshots from when both were one Recent of {o, t, ev}
 * restore the last failure (not its samples).
 */
const IP_LAST_FIELDS = 'st';
const IP_SAMPLE_FIELDS = 'suts';
const ipLastFromRecent = (v: unknown) => {
  const st = v as { o?: unknown; t?: unknown };
  return typeof st.o === 'string' && typeof st.t === 'number' ? [st.o, st.t] : undefined;
};

const MAX_STREAK_IPS = 16;
const MAX_EVIDENCE = 6;
const SAMPLE_ACCOUNTS = 8;

/**
 * Interned origin strings: one string per (program, service, file) instead of
 * a fresh concatenation kept in every IP's and account's state. Few distinct
 * values; the table is simply cleared if it ever grows large.
 */
const origins = new Map<string, Map<string, string>>();

/** The last origin returned and what it was for: failures come in runs from one program and file. */
let memoProgram = '';
let memoSvc = '';
let memoFile = '';
let memoOrigin = '';

function origin(e: Event): string {
  const svc = e.kind === 'auth' ? (e.service ?? '') : '';
  if (e.program === memoProgram && svc === memoSvc && e.src.file === memoFile) return memoOrigin;
  memoProgram = e.program;
  memoSvc = svc;
  memoFile = e.src.file;
  memoOrigin = originOf(e, svc);
  return memoOrigin;
}

function originOf(e: Event, svc: string): string {
  let byFile = origins.get(e.src.file);
  if (byFile === undefined) {
    if (origins.size >= 1024) origins.clear();
    byFile = new Map();
    origins.set(e.src.file, byFile);
  }
  const k = e.program + '|' + svc;
  let o = byFile.get(k);
  if (o === undefined) {
    if (byFile.size >= 1024) byFile.clear();
    o = `${k}|${e.src.file}`;
    byFile.set(k, o);
  }
  return o;
}

export const authAttackDetector = defineDetector({
  id: 'auth-attack',
  description: 'Password attacks: spraying from one IP, brute force on one account (distributed or not), and a success after a run of failures.',
  config,
  events: ['auth', 'smtp.client', 'smtp.disconnect'],
  // a failed login, a successful one with an account, SMTP AUTH, and disconnects with failed AUTH commands
  reads: (e) => e.kind === 'auth' || (e.kind === 'smtp.client' && e.account !== undefined) || (e.kind === 'smtp.disconnect' && e.authFailed === true),
  messages: false,
  create(cfg, { store, site, emit, owner }) {
    const maxKeys = cfg.maxKeys;
    // per IP
    const sprayed = store.distinct('ip-accounts', { windowMs: cfg.sprayWindowMs, maxKeys, maxPerKey: Math.max(64, cfg.sprayAccounts * 4) });
    const ipFails = store.counter('ip-failures', { windowMs: cfg.ipWindowMs, maxKeys });
    const ipTtlMs = Math.max(cfg.sprayWindowMs, cfg.ipWindowMs);
    const ipLast = store.samples('ip', { ttlMs: ipTtlMs, maxKeys, size: 1, fields: IP_LAST_FIELDS, fromRecent: ipLastFromRecent });
    const ipSamples = store.samples('ip-samples', { ttlMs: ipTtlMs, maxKeys, size: MAX_EVIDENCE, fields: IP_SAMPLE_FIELDS, keep: 'first-and-newest' });
    const lastRow: (string | number)[] = ['', 0]; // read into and written from: no allocation per failure
    const sampleRow: (string | number)[] = ['', 0, 0, ''];
    // per account
    const acctIps = store.distinct('account-ips', { windowMs: cfg.distributedWindowMs, maxKeys, maxPerKey: Math.max(64, cfg.distributedIps * 4) });
    const acctFails = store.counter('account-failures', { windowMs: cfg.accountWindowMs, maxKeys });
    const streaks = store.recent<Streak>('streak', { ttlMs: cfg.guessWindowMs, maxKeys });
    const cool = store.recent<number>('cooldown', { ttlMs: cfg.cooldownMs, maxKeys });

    /** Cooldown gate, checked before any finding is built (the hot path past a threshold). */
    function due(signal: string, kind: string, id: string, ts: number, severity: Severity): boolean {
      return passCooldown(cool, `${signal}|${kind}|${id}`, ts, severity);
    }

    function report(
      signal: 'spraying' | 'brute-force' | 'guessed-password',
      kind: 'account' | 'ip',
      id: string,
      severity: Severity,
      score: number,
      ts: number,
      summary: string,
      window: Record<string, unknown>,
      ev: Evidence[],
      extra: { account?: string; ip?: string },
    ): void {
      const f: Finding = {
        type: 'finding',
        detector: 'auth-attack',
        entity: { kind, id },
        severity,
        score: clampScore(score),
        ts,
        signals: [signal],
        summary,
        window,
        evidence: ev.slice(0, 10),
      };
      if (extra.account !== undefined) f.account = extra.account;
      if (extra.ip !== undefined) f.ip = extra.ip;
      emit(f);
    }


    /** A failure that concerns an IP (account known or not). Spraying and brute force per IP: the IP's delivery. */
    function ipFailure(e: Event, ip: string, account: string | undefined, n: number): void {
      if (!owner.ip(ip)) return;
      const ts = e.ts;
      const o = origin(e);
      const seen = ipLast.latest(ip, ts, lastRow);
      // same attempt logged by two sources: count it once for the IP's volume
      const dup = seen && cfg.dedupeMs > 0 && lastRow[0] !== o && Math.abs(ts - (lastRow[1] as number)) <= cfg.dedupeMs;
      if (!seen) {
        ipSamples.delete(ip); // a new run: one-off IPs stay small, samples start at the second failure
      } else {
        sampleRow[0] = e.src.file;
        sampleRow[1] = e.src.offset;
        sampleRow[2] = ts;
        sampleRow[3] = account ?? '';
        ipSamples.add(ip, ts, sampleRow);
      }
      if (!dup) {
        lastRow[0] = o;
        lastRow[1] = ts;
      }
      ipLast.add(ip, ts, lastRow); // a duplicate keeps the first copy's origin and time
      // built only when a finding needs them
      const ipEvidence = (): Evidence[] => {
        const rows = seen ? ipSamples.get(ip, ts) : undefined;
        if (rows === undefined) return [evidence(e.src, ts, account ? `login failed for ${account} from ${ip}` : `login failed from ${ip}`)];
        return rows.map((r) => evidence({ file: r[0] as string, offset: r[1] as number }, r[2] as number, r[3] !== '' ? `login failed for ${r[3] as string} from ${ip}` : `login failed from ${ip}`));
      };
      if (!dup) {
        const c = ipFails.add(ip, ts, n);
        const sev: Severity = c >= cfg.ipFailures * 5 ? 'high' : 'medium';
        if (c >= cfg.ipFailures && due('brute-force', 'ip', ip, ts, sev)) {
          report(
            'brute-force',
            'ip',
            ip,
            sev,
            35 + Math.min(30, (c / cfg.ipFailures) * 5),
            ts,
            `${ip} failed ${c} logins in ${fmtDuration(cfg.ipWindowMs)} (threshold ${cfg.ipFailures})`,
            { failures: c, threshold: cfg.ipFailures, windowMs: cfg.ipWindowMs },
            ipEvidence(),
            { ip },
          );
        }
      }
      if (account === undefined) return;
      const d = sprayed.add(ip, account, ts);
      const sev: Severity = d.count >= cfg.sprayAccounts * 3 ? 'high' : 'medium';
      if (d.count >= cfg.sprayAccounts && due('spraying', 'ip', ip, ts, sev)) {
        const accounts = sprayed.values(ip, ts);
        const sample = accounts.slice(0, SAMPLE_ACCOUNTS);
        report(
          'spraying',
          'ip',
          ip,
          sev,
          50 + Math.min(30, (d.count / cfg.sprayAccounts) * 5),
          ts,
          `${ip} failed logins for ${d.count}${d.capped ? '+' : ''} distinct accounts in ${fmtDuration(cfg.sprayWindowMs)} ` +
            `(threshold ${cfg.sprayAccounts}), e.g. ${sample.join(', ')}`,
          { accounts: d.count, capped: d.capped, threshold: cfg.sprayAccounts, windowMs: cfg.sprayWindowMs, sampleAccounts: sample },
          ipEvidence(),
          { ip },
        );
      }
    }

    /** Brute force on the account and its failure run (for guessed-password): the account's delivery. */
    function accountFailure(e: Event, account: string, ip: string | undefined, n: number): void {
      if (!owner.account(account)) return;
      const ts = e.ts;
      const note = `login failed for ${account}${ip ? ` from ${ip}` : ''}`;
      if (ip !== undefined) {
        const d = acctIps.add(account, ip, ts);
        const sev: Severity = d.count >= cfg.distributedIps * 3 ? 'high' : 'medium';
        if (d.count >= cfg.distributedIps && due('brute-force', 'account', account, ts, sev)) {
          const st = streaks.get(account, ts);
          const ev = st ? st.ev.slice() : [];
          pushSample(ev, evidence(e.src, e.ts, note), MAX_EVIDENCE + 1);
          const ipsNow = acctIps.values(account, ts);
          report(
            'brute-force',
            'account',
            account,
            sev,
            45 + Math.min(30, (d.count / cfg.distributedIps) * 5),
            ts,
            `${account} failed logins from ${d.count}${d.capped ? '+' : ''} distinct IPs in ${fmtDuration(cfg.distributedWindowMs)} ` +
              `(threshold ${cfg.distributedIps}): distributed brute force, e.g. from ${ipsNow.slice(-5).join(', ')}`,
            { ips: d.count, capped: d.capped, threshold: cfg.distributedIps, windowMs: cfg.distributedWindowMs, sampleIps: ipsNow.slice(-SAMPLE_ACCOUNTS) },
            ev,
            { account },
          );
        }
      }

      // merged failure count and the run for guessed-password
      const o = origin(e);
      let st = streaks.get(account, ts);
      if (st !== undefined && cfg.dedupeMs > 0 && Math.abs(ts - st.last) <= cfg.dedupeMs && o !== st.lastOrigin && (ip === undefined || st.lastIp === null || st.lastIp === ip)) {
        // the same attempt seen in another log: keep the IP if the first copy lacked it
        if (st.lastIp === null && ip !== undefined) {
          if (st.noIp > 0) st.noIp--;
          addIp(st, ip, 1);
          st.lastIp = ip;
          streaks.set(account, ts, st);
        }
        return;
      }
      if (st === undefined) st = { n: 0, noIp: 0, ips: [], overflow: 0, first: ts, last: ts, lastOrigin: o, lastIp: null, ev: [] };
      if (st.n === 0) st.first = ts;
      st.n += n;
      if (ip === undefined) st.noIp += n;
      else addIp(st, ip, n);
      st.last = ts;
      st.lastOrigin = o;
      st.lastIp = ip ?? null;
      pushSample(st.ev, evidence(e.src, e.ts, note), MAX_EVIDENCE);
      streaks.set(account, ts, st);

      const c = acctFails.add(account, ts, n);
      const sev: Severity = c >= cfg.accountFailures * 5 ? 'high' : 'medium';
      if (c >= cfg.accountFailures && due('brute-force', 'account', account, ts, sev)) {
        report(
          'brute-force',
          'account',
          account,
          sev,
          40 + Math.min(30, (c / cfg.accountFailures) * 5),
          ts,
          `${account} failed ${c} logins in ${fmtDuration(cfg.accountWindowMs)} (threshold ${cfg.accountFailures}) from ${st.ips.length + (st.overflow > 0 ? 1 : 0)}+ IPs`,
          { failures: c, threshold: cfg.accountFailures, windowMs: cfg.accountWindowMs },
          st.ev,
          { account },
        );
      }
    }

    function success(e: Event, account: string, ip: string | undefined): void {
      if (!owner.account(account)) return;
      const ts = e.ts;
      const st = streaks.get(account, ts);
      if (st === undefined || st.n === 0) return;
      const K = cfg.guessFailures;
      let guessed = false;
      let pair = 0;
      if (ip !== undefined) {
        // a loop, not findIndex with a closure: this runs for every login of an account under attack
        let i = 0;
        while (i < st.ips.length && st.ips[i]![0] !== ip) i++;
        if (i === st.ips.length) i = -1;
        pair = i >= 0 ? st.ips[i]![1] : 0;
        const distinctIps = st.ips.length + (st.overflow > 0 ? 1 : 0);
        // the IP itself ran through the guesses, or it took part in a distributed run
        guessed = pair >= K || (st.n >= K && pair >= 1 && distinctIps >= 2);
        if (!guessed) {
          // a typo (or a few) then the right password: that pair starts over
          if (i >= 0) st.ips.splice(i, 1);
          st.n -= pair;
          streaks.set(account, ts, st);
          return;
        }
      } else {
        pair = st.noIp;
        guessed = st.noIp >= K;
        if (!guessed) {
          st.n -= st.noIp;
          st.noIp = 0;
          streaks.set(account, ts, st);
          return;
        }
      }
      streaks.delete(account);
      if (!due('guessed-password', 'account', account, ts, 'high')) return;
      const distinctIps = st.ips.length + (st.overflow > 0 ? 1 : 0);
      const ev = st.ev.slice();
      pushSample(ev, evidence(e.src, e.ts, `login succeeded for ${account}${ip ? ` from ${ip}` : ''}`), MAX_EVIDENCE + 1);
      const failedIps = st.ips.slice(0, SAMPLE_ACCOUNTS).map((x) => x[0]);
      const mins = Math.max(1, Math.round((ts - st.first) / 60_000));
      report(
        'guessed-password',
        'account',
        account,
        'high',
        70 + Math.min(25, st.n + distinctIps),
        ts,
        `${account} logged in${ip ? ` from ${ip}` : ''} after ${st.n} failed logins in ${mins} min` +
          (distinctIps > 0 ? ` from ${distinctIps} IP${distinctIps === 1 ? '' : 's'}` : '') +
          (ip && pair > 0 ? ` (${pair} from that IP)` : '') +
          `: password likely guessed`,
        {
          failures: st.n,
          failuresFromIp: pair,
          failuresWithoutIp: st.noIp,
          distinctIps,
          threshold: K,
          windowMs: cfg.guessWindowMs,
          firstFailure: st.first,
          sampleIps: failedIps,
          protocol: e.kind === 'auth' ? e.protocol : 'smtp',
        },
        ev,
        ip !== undefined ? { account, ip } : { account },
      );
    }

    function onAuth(e: EventOf<'auth'>): void {
      const account = normAccount(e.account);
      const ip = e.ip !== undefined && !site.isMailHost(e.ip) ? e.ip : undefined;
      if (e.outcome === 'failure') {
        const n = e.attempts !== undefined && e.attempts > 1 ? e.attempts : 1;
        if (ip !== undefined) ipFailure(e, ip, account, n);
        if (account !== undefined) accountFailure(e, account, ip, n);
      } else if (account !== undefined) {
        success(e, account, ip);
      }
    }

    function onEvent(e: Event): void {
      if (e.kind === 'auth') onAuth(e);
      else if (e.kind === 'smtp.client') {
        if (!cfg.smtpClientIsSuccess) return;
        const account = normAccount(e.account);
        if (account === undefined) return;
        success(e, account, site.isMailHost(e.ip) ? undefined : e.ip);
      } else if (e.kind === 'smtp.disconnect') {
        if (cfg.countDisconnectFailures && e.authFailed === true && !site.isMailHost(e.ip)) ipFailure(e, e.ip, undefined, 1);
      }
    }

    return { onEvent };
  },
});

function addIp(st: Streak, ip: string, n: number): void {
  for (const x of st.ips) {
    if (x[0] === ip) {
      x[1] += n;
      return;
    }
  }
  if (st.ips.length < MAX_STREAK_IPS) st.ips.push([ip, n]);
  else st.overflow += n;
}
