/**
 * Synthetic mail-server log for the benchmark (and for tests that need volume).
 *
 * Deterministic: a seeded PRNG (mulberry32, inline) drives everything; no
 * Math.random, no wall clock. One output mixes two envelope formats the way a
 * merged archive would:
 *   - RFC 3164 syslog from Postfix/amavis/saslauthd/policyd-spf
 *     (`Nov 27 10:00:01 mx1 postfix/smtpd[1234]: ...`), and
 *   - Zimbra's Java log (mailbox.log / audit.log style,
 *     `2026-11-27 10:00:00,123 INFO  [ImapSSLServer-12] [...] imap - ...`), ~5%.
 *
 * Traffic is made of *flows* (one SMTP session and the messages it queues,
 * through the amavis hop to final delivery, bounces included). A handful of
 * flows are open at once and their lines interleave, as in a real log. Queue
 * ids are 10 uppercase hex digits and unique within one output. Every
 * ~20k flows (first one early) a compromised-account episode runs: one
 * account's password is used from foreign IPs to push spam with forged
 * senders (`kj3h2@yahoo.com.tw`) to many recipients, with deferrals from the
 * big providers and bounces.
 *
 * Time starts at `startTs` and advances ~60 ms per line on average (slower at
 * night), so 2M lines span about a day and a half. Timestamps are UTC.
 */
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { finished } from 'node:stream/promises';

export interface GenerateOptions {
  lines: number;
  seed?: number;
  /** Epoch ms of the first line; default 2026-11-27T00:00:00Z. */
  startTs?: number;
  /** Syslog host names; each flow runs on one of them. Default ['mx1']. */
  hosts?: string[];
  /** Size of the local account pool (user0001@example.com ...). Default 2000. */
  accounts?: number;
}

export const DEFAULT_START_TS = Date.UTC(2026, 10, 27, 0, 0, 0);

// ---------------------------------------------------------------------------
// PRNG and hashing

/** Seeded PRNG (mulberry32): the generator and the scenario builders share it. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed | 0;
  }
  /** Uniform in [0, 1). mulberry32. */
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return (this.next() * n) | 0;
  }
  /** Integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + ((this.next() * (hi - lo + 1)) | 0);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(a: readonly T[]): T {
    return a[(this.next() * a.length) | 0] as T;
  }
  /** Index in [0, n) skewed toward 0 (a few heavy hitters, a long tail). */
  skewed(n: number): number {
    const u = this.next();
    return (u * u * n) | 0;
  }
}

/** 32-bit integer mix (murmur3 finaliser). */
function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

const HEX = '0123456789ABCDEF';
const hexLower = '0123456789abcdef';
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const ALNUM = 'abcdefghijklmnopqrstuvwxyz0123456789';

function hex8(n: number, digits: string): string {
  let s = '';
  for (let i = 28; i >= 0; i -= 4) s += digits[(n >>> i) & 15];
  return s;
}

const P2: string[] = [];
for (let i = 0; i < 100; i++) P2.push(i < 10 ? `0${i}` : String(i));
const P3: string[] = [];
for (let i = 0; i < 1000; i++) P3.push(i < 10 ? `00${i}` : i < 100 ? `0${i}` : String(i));
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** `Nov 27 10:01:02` for an arbitrary instant (rare use: statistics lines). */
function rfcStamp(ms: number): string {
  const d = new Date(ms);
  const day = d.getUTCDate();
  return `${MONTHS[d.getUTCMonth()]} ${day < 10 ? ` ${day}` : day} ${P2[d.getUTCHours()]}:${P2[d.getUTCMinutes()]}:${P2[d.getUTCSeconds()]}`;
}

// ---------------------------------------------------------------------------
// Clock: monotonic ms, with the textual prefixes cached per second / per day.

class Clock {
  ms: number;
  private sec = Number.NaN;
  private day = Number.NaN;
  private dayRfc = '';
  private dayIso = '';
  private dayCompact = '';
  private rfc = '';
  private iso = '';
  private compact = '';
  hour = 0;

  constructor(start: number) {
    this.ms = Math.floor(start);
    this.refresh();
  }

  advance(dt: number): void {
    this.ms += dt;
    if (Math.floor(this.ms / 1000) !== this.sec) this.refresh();
  }

  private refresh(): void {
    const sec = Math.floor(this.ms / 1000);
    this.sec = sec;
    const day = Math.floor(sec / 86400);
    if (day !== this.day) {
      this.day = day;
      const d = new Date(day * 86400000);
      const dd = d.getUTCDate();
      const mm = d.getUTCMonth();
      this.dayRfc = `${MONTHS[mm]} ${dd < 10 ? ` ${dd}` : dd} `;
      this.dayIso = `${d.getUTCFullYear()}-${P2[mm + 1]}-${P2[dd]} `;
      this.dayCompact = `${d.getUTCFullYear()}${P2[mm + 1]}${P2[dd]}`;
    }
    const s = sec - day * 86400;
    const h = (s / 3600) | 0;
    const m = ((s % 3600) / 60) | 0;
    const hms = `${P2[h]}:${P2[m]}:${P2[s % 60]}`;
    this.hour = h;
    this.rfc = `${this.dayRfc}${hms} `;
    this.iso = `${this.dayIso}${hms},`;
    this.compact = `${this.dayCompact}${P2[h]}${P2[m]}${P2[s % 60]}`;
  }

  /** `Nov 27 10:00:01 ` */
  rfcPrefix(): string {
    return this.rfc;
  }
  /** `2026-11-27 10:00:01,123 ` */
  isoPrefix(): string {
    return `${this.iso}${P3[this.ms - this.sec * 1000]} `;
  }
  /** `20261127100001` (postfix-generated message ids) */
  compactStamp(): string {
    return this.compact;
  }
}

// ---------------------------------------------------------------------------
// Static vocabulary

const LOCAL_DOMAIN = 'example.com';
const MAILBOX_HOST = 'mail.example.com';
const MAILBOX_IP = '10.0.0.5';
const ZMARK = '\u0001'; // flow lines starting with this are Zimbra Java-log lines

const NAMES = [
  'anna', 'john', 'maria', 'peter', 'li', 'wei', 'sara', 'tom', 'olga', 'ivan', 'lucas', 'emma',
  'noah', 'mia', 'sofia', 'david', 'chen', 'yuki', 'hans', 'marta', 'paolo', 'ana', 'jorge',
  'fatima', 'omar', 'priya', 'raj', 'kim', 'lee', 'nina', 'alex', 'sam', 'info', 'sales',
  'support', 'billing', 'hr', 'office', 'news', 'noreply', 'admin', 'contact', 'team', 'jobs',
];
const SURNAMES = [
  'smith', 'mueller', 'rossi', 'garcia', 'wang', 'tanaka', 'kowalski', 'silva', 'novak', 'dubois',
  'jensen', 'ivanova', 'lopez', 'nguyen', 'brown', 'khan', 'cohen', 'berg', 'costa', 'meyer',
];
const SPAM_TLDS = ['biz', 'top', 'xyz', 'info', 'ru', 'cn', 'club', 'online', 'site', 'icu'];
const BAD_HELOS = ['ylmf-pc', 'User', 'WIN-CLJ1B0GQ6JP', 'localhost', 'example.com', '[127.0.0.1]', 'ADMIN', 'windows7'];
const FREEMAIL_RCPT = ['gmail.com', 'yahoo.com', 'outlook.com', 'hotmail.com'];
const FORGED_DOMAINS = ['yahoo.com.tw', 'yahoo.com.tw', 'yahoo.com.tw', 'hotmail.com', 'gmail.com', 'yahoo.co.jp', 'msa.hinet.net'];
const SPAM_RCPT_DOMAINS = ['yahoo.com.tw', 'hotmail.com', 'gmail.com', 'yahoo.com', 'msa.hinet.net', 'outlook.com', 'qq.com', '163.com'];
const FOREIGN_PREFIXES = [41, 102, 105, 154, 197, 185, 5, 36, 39, 49, 110, 111, 113, 114, 116, 117, 175, 180, 182, 190, 200, 201];
const TLS_IN = [
  'TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)',
  'TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)',
  'TLSv1.2 with cipher ECDHE-RSA-AES128-GCM-SHA256 (128/128 bits)',
  'TLSv1.3 with cipher TLS_AES_128_GCM_SHA256 (128/128 bits)',
];
const UAS = [
  'ZimbraWebClient - FF120 (Win)/8.8.15_GA_4179',
  'ZimbraWebClient - GC119 (Win)/8.8.15_GA_4179',
  'ZimbraWebClient - GC120 (Mac)/9.0.0_GA_4546',
  'ZimbraWebClient - SAF17 (Mac)/9.0.0_GA_4546',
  'ZimbraWebClient - EDGE120 (Win)/8.8.15_GA_4179',
  'zclient/9.0.0_GA_4546',
];
const IMAP_MECHS = ['PLAIN', 'PLAIN', 'LOGIN'];
const RBLS = ['zen.spamhaus.org', 'b.barracudacentral.org', 'bl.spamcop.net'];

// ---------------------------------------------------------------------------
// Generator state

interface Flow {
  host: HostState;
  lines: string[];
  i: number;
}

interface AmavisChild {
  pid: number;
  seq: number;
}

interface HostState {
  name: string;
  publicIp: string;
  qmgr: number;
  postscreen: number;
  anvil: number;
  scache: number;
  cleanup: number[];
  smtp: number[];
  lmtp: number[];
  bounce: number[];
  saslauthd: number[];
  amavis: AmavisChild[];
}

interface Episode {
  victim: string;
  ips: string[];
  remaining: number;
}

interface Deferred {
  host: HostState;
  qid: string;
  from: string;
}

interface Remote {
  relay: string;
  kind: 'gmail' | 'yahoo' | 'outlook' | 'other' | 'cn';
}

class LogGenerator {
  private readonly rng: Rng;
  readonly clock: Clock;
  private readonly seed: number;
  private readonly hosts: HostState[];
  private readonly accounts: string[];
  private readonly accountIp: string[];
  private readonly active: Flow[] = [];
  private pid: number;
  private qcount: number;
  private flowCount = 0;
  private nextEpisodeAt: number;
  private episode: Episode | null = null;
  private readonly deferred: Deferred[] = [];
  private msgCounter: number;

  constructor(opts: GenerateOptions) {
    this.seed = (opts.seed ?? 1) | 0;
    this.rng = new Rng(mix32(this.seed ^ 0x9e3779b9));
    this.clock = new Clock(opts.startTs ?? DEFAULT_START_TS);
    this.pid = this.rng.range(2000, 20000);
    this.qcount = this.rng.int(1 << 20);
    this.msgCounter = this.rng.range(100000, 900000);
    const n = Math.max(1, Math.floor(opts.accounts ?? 2000));
    const width = Math.max(4, String(n).length);
    this.accounts = [];
    this.accountIp = [];
    for (let i = 1; i <= n; i++) {
      this.accounts.push(`user${String(i).padStart(width, '0')}@${LOCAL_DOMAIN}`);
      this.accountIp.push(this.ipFromHash(mix32(i * 7919 + this.seed)));
    }
    const names = opts.hosts && opts.hosts.length > 0 ? opts.hosts : ['mx1'];
    this.hosts = names.map((name, i) => this.newHost(name, i));
    this.nextEpisodeAt = this.rng.range(150, 450);
  }

  // -- small helpers --------------------------------------------------------

  private newPid(): number {
    this.pid += this.rng.range(1, 9);
    if (this.pid > 32767) this.pid = this.rng.range(300, 1300);
    return this.pid;
  }

  private newHost(name: string, i: number): HostState {
    const pool = (k: number): number[] => {
      const a: number[] = [];
      for (let j = 0; j < k; j++) a.push(this.newPid());
      return a;
    };
    const amavis: AmavisChild[] = [];
    for (let j = 0; j < 10; j++) amavis.push({ pid: this.newPid(), seq: this.rng.range(1, 20) });
    return {
      name,
      publicIp: `203.0.113.${10 + (i % 240)}`,
      qmgr: this.newPid(),
      postscreen: this.newPid(),
      anvil: this.newPid(),
      scache: this.newPid(),
      cleanup: pool(4),
      smtp: pool(8),
      lmtp: pool(3),
      bounce: pool(2),
      saslauthd: pool(5),
      amavis,
    };
  }

  /** A pid from a pool of reused daemons; once in a while one exits and is replaced. */
  private poolPid(pool: number[]): number {
    const i = this.rng.int(pool.length);
    if (this.rng.chance(0.002)) pool[i] = this.newPid();
    return pool[i] as number;
  }

  private amavisTag(h: HostState): string {
    const c = h.amavis[this.rng.int(h.amavis.length)] as AmavisChild;
    c.seq++;
    if (c.seq > 300 || this.rng.chance(0.001)) {
      c.pid = this.newPid();
      c.seq = 1;
    }
    return `amavis[${c.pid}]: (${c.pid}-${c.seq < 10 ? `0${c.seq}` : c.seq})`;
  }

  /** Unique 10-hex-digit queue id: low 32 bits are a bijection of a counter. */
  private qid(): string {
    const c = this.qcount++;
    const lo = Math.imul(c, 2654435761) >>> 0;
    const hi = this.rng.int(256);
    return HEX[hi >>> 4]! + HEX[hi & 15]! + hex8(lo, HEX);
  }

  private ipFromHash(h: number): string {
    let a = 1 + ((h >>> 24) % 223);
    if (a === 10 || a === 127 || a === 100 || a === 169 || a === 172 || a === 192) a += 1;
    return `${a}.${(h >>> 16) & 255}.${(h >>> 8) & 255}.${1 + ((h & 255) % 254)}`;
  }

  /** An internet IP from a large deterministic pool, skewed toward a few heavy senders. */
  private internetIp(): string {
    return this.ipFromHash(mix32(this.rng.skewed(60000) * 2246822519 + this.seed));
  }

  private foreignIp(): string {
    const r = this.rng;
    return `${r.pick(FOREIGN_PREFIXES)}.${r.int(256)}.${r.int(256)}.${r.range(1, 254)}`;
  }

  private port(): number {
    return this.rng.range(32768, 65535);
  }

  /** Index of a local account: a few heavy senders (newsletters, shared desks), then everyone. */
  private accountIndex(): number {
    const n = this.accounts.length;
    return this.rng.chance(0.08) ? this.rng.int(Math.min(n, 5)) : this.rng.int(n);
  }

  private account(): string {
    return this.accounts[this.accountIndex()] as string;
  }

  /** Client IP of a legitimate user: home/office address mostly, mobile sometimes. */
  private userIp(acct: number): string {
    return this.rng.chance(0.8) ? (this.accountIp[acct] as string) : this.internetIp();
  }

  private randStr(n: number, alphabet: string): string {
    let s = '';
    for (let i = 0; i < n; i++) s += alphabet[this.rng.int(alphabet.length)];
    return s;
  }

  private localPart(): string {
    const r = this.rng;
    const a = r.pick(NAMES);
    switch (r.int(4)) {
      case 0: return a;
      case 1: return `${a}.${r.pick(SURNAMES)}`;
      case 2: return `${a}${r.range(1, 99)}`;
      default: return `${a[0]}${r.pick(SURNAMES)}`;
    }
  }

  private remoteDomain(): string {
    const r = this.rng.next();
    if (r < 0.35) return this.rng.pick(FREEMAIL_RCPT);
    return `d${P2[this.rng.int(100)]}${P2[this.rng.skewed(100)]}.example.net`;
  }

  /** Recipient of a user's outgoing mail: colleagues, freemail, business partners. */
  private outRecipient(): string {
    if (this.rng.chance(0.3)) return this.account();
    return `${this.localPart()}@${this.remoteDomain()}`;
  }

  private size(): number {
    return Math.floor(Math.exp(6.6 + this.rng.next() * 5.5));
  }

  private delay(x: number): string {
    if (x < 0.01) return '0';
    if (x >= 100) return String(Math.round(x));
    if (x >= 10) return x.toFixed(1);
    return String(Math.round(x * 100) / 100);
  }

  private delays(total: number): string {
    const r = this.rng;
    const a = total * r.next() * 0.2;
    const b = r.chance(0.7) ? 0 : total * 0.05 * r.next();
    const c = total * r.next() * 0.3;
    const d = Math.max(0, total - a - b - c);
    return `delay=${this.delay(total)}, delays=${this.delay(a)}/${this.delay(b)}/${this.delay(c)}/${this.delay(d)}`;
  }

  private remote(domain: string): Remote {
    const r = this.rng;
    switch (domain) {
      case 'gmail.com':
        return { relay: `gmail-smtp-in.l.google.com[142.250.${r.range(100, 150)}.${r.range(26, 27)}]:25`, kind: 'gmail' };
      case 'yahoo.com':
      case 'yahoo.com.tw':
      case 'yahoo.co.jp':
        return { relay: `mta${r.range(5, 7)}.am0.yahoodns.net[67.195.${r.range(204, 228)}.${r.range(70, 79)}]:25`, kind: 'yahoo' };
      case 'outlook.com':
      case 'hotmail.com':
        return { relay: `${domain.replace('.', '-')}.olc.protection.outlook.com[52.101.${r.range(8, 73)}.${r.range(1, 40)}]:25`, kind: 'outlook' };
      case 'qq.com':
      case '163.com':
      case 'msa.hinet.net':
        return { relay: `mx${r.range(1, 3)}.${domain}[${r.range(110, 183)}.${r.int(256)}.${r.int(256)}.${r.range(1, 254)}]:25`, kind: 'cn' };
      default: {
        let h = this.seed;
        for (let i = 0; i < domain.length; i++) h = Math.imul(h ^ domain.charCodeAt(i), 16777619);
        h = mix32(h);
        return { relay: `mx${1 + (h & 1)}.${domain}[${this.ipFromHash(h)}]:25`, kind: 'other' };
      }
    }
  }

  private sentReply(kind: Remote['kind'], mid: string): string {
    const r = this.rng;
    switch (kind) {
      case 'gmail':
        return `250 2.0.0 OK  ${Math.floor(this.clock.ms / 1000)} ${this.randStr(12, ALNUM)}.${r.range(100, 999)} - gsmtp`;
      case 'yahoo':
        return '250 ok dirdel';
      case 'outlook':
        return `250 2.6.0 ${mid} [InternalId=${r.range(10000000, 99999999)}${r.range(100000, 999999)}, Hostname=AM${r.range(0, 9)}PR0${r.range(1, 9)}MB${r.range(1000, 9999)}.eurprd0${r.range(1, 9)}.prod.outlook.com] ${r.range(2000, 90000)} bytes in 0.${r.range(100, 999)}, Queued mail for delivery`;
      case 'cn':
        return `250 Mail OK queued as mx${r.range(1, 9)},${this.randStr(16, B64)}`;
      default:
        return `250 2.0.0 Ok: queued as 4${this.randStr(11, B64.slice(0, 62))}`;
    }
  }

  private deferReason(kind: Remote['kind'], relay: string, h: HostState): string {
    const host = relay.slice(0, relay.lastIndexOf(':'));
    switch (kind) {
      case 'yahoo':
        return `host ${host} said: 421 4.7.0 [TSS04] Messages from ${h.publicIp} temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes (in reply to MAIL FROM command)`;
      case 'gmail':
        return `host ${host} said: 421-4.7.28 Gmail has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited. (in reply to end of DATA command)`;
      case 'outlook':
        return `host ${host} said: 451 4.7.500 Server busy. Please try again later from [${h.publicIp}]. (S77719) (in reply to RCPT TO command)`;
      default:
        return this.rng.chance(0.5)
          ? `connect to ${relay}: Connection timed out`
          : `host ${host} said: 450 4.7.1 Client host rejected: cannot find your reverse hostname, [${h.publicIp}] (in reply to RCPT TO command)`;
    }
  }

  private bounceReason(kind: Remote['kind'], relay: string, rcpt: string): [string, string] {
    const host = relay.slice(0, relay.lastIndexOf(':'));
    switch (kind) {
      case 'gmail':
        return ['5.1.1', `host ${host} said: 550-5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces. (in reply to RCPT TO command)`];
      case 'yahoo':
        return ['5.0.0', `host ${host} said: 554 delivery error: dd This user doesn't have a yahoo.com account (${rcpt}) [0] - mta${this.rng.range(1000, 9999)}.mail.bf1.yahoo.com (in reply to end of DATA command)`];
      case 'outlook':
        return ['5.5.0', `host ${host} said: 550 5.5.0 Requested action not taken: mailbox unavailable (in reply to RCPT TO command)`];
      default:
        return ['5.1.1', `host ${host} said: 550 5.1.1 <${rcpt}>: Recipient address rejected: User unknown in virtual mailbox table (in reply to RCPT TO command)`];
    }
  }

  private messageId(fromDomain: string, webmail: boolean): string {
    if (webmail) {
      this.msgCounter += this.rng.range(1, 40);
      return `<${this.rng.range(100000000, 2147483647)}.${this.msgCounter}.${this.clock.ms}.JavaMail.zimbra@${fromDomain}>`;
    }
    switch (this.rng.int(4)) {
      case 0: return `<${hex8(this.rng.int(0x7fffffff), hexLower)}-${hex8(this.rng.int(0x7fffffff), hexLower).slice(0, 4)}-${hex8(this.rng.int(0x7fffffff), hexLower)}@${fromDomain}>`;
      case 1: return `<CA${this.randStr(30, B64)}@mail.gmail.com>`;
      case 2: return `<${this.clock.compactStamp()}.${this.randStr(10, ALNUM)}@${fromDomain}>`;
      default: return `<${this.randStr(12, ALNUM)}$${this.randStr(6, ALNUM)}@${fromDomain}>`;
    }
  }

  // -- flows ------------------------------------------------------------------

  private host(): HostState {
    return this.hosts.length === 1 ? (this.hosts[0] as HostState) : this.rng.pick(this.hosts);
  }

  /**
   * The amavis hop and final delivery of a message already queued as q1 (its
   * cleanup/qmgr lines are the caller's). Appends to `out`.
   */
  private relayThroughAmavis(
    out: string[], h: HostState, q1: string, mid: string, from: string, rcpts: string[],
    size: number, clientIp: string, outbound: boolean, spamminess: number,
  ): void {
    const r = this.rng;
    const qm = `postfix/qmgr[${h.qmgr}]: `;
    const n = rcpts.length;
    const hopPid = this.poolPid(h.smtp);
    const hits = outbound ? (spamminess > 0.5 ? (3 + r.next() * 4).toFixed(3) : (-3 + r.next() * 3).toFixed(3)) : (-2 + r.next() * (spamminess > 0.5 ? 14 : 6)).toFixed(3);
    const mailId = this.randStr(12, B64);
    const amPort = this.port();
    const ms = r.range(150, 2500);
    const rcptList = `<${rcpts.join('>,<')}>`;
    const blocked = !outbound && Number(hits) >= 6.3 && r.chance(0.8);
    if (blocked) {
      out.push(`${this.amavisTag(h)} Blocked SPAM {DiscardedInbound,Quarantined}, [127.0.0.1]:${amPort} [${clientIp}] <${from}> -> ${rcptList}, quarantine: spam-${mailId}.gz, Queue-ID: ${q1}, Message-ID: ${mid}, mail_id: ${mailId}, Hits: ${hits}, size: ${size}, ${ms} ms`);
      for (const rc of rcpts) {
        out.push(`postfix/smtp[${hopPid}]: ${q1}: to=<${rc}>, relay=127.0.0.1[127.0.0.1]:10032, ${this.delays(ms / 1000 + 0.05)}, dsn=2.7.0, status=sent (250 2.7.0 Ok, discarded, id=${hopPid}-${r.range(1, 40)} - spam)`);
      }
      out.push(`${qm}${q1}: removed`);
      return;
    }
    const q2 = this.qid();
    const ap = this.newPid();
    const as = `postfix/amavisd/smtpd[${ap}]: `;
    out.push(`${as}connect from localhost[127.0.0.1]`);
    out.push(`${as}${q2}: client=localhost[127.0.0.1]`);
    out.push(`postfix/cleanup[${this.poolPid(h.cleanup)}]: ${q2}: message-id=${mid}`);
    const size2 = size + r.range(400, 1400);
    out.push(`${qm}${q2}: from=<${from}>, size=${size2}, nrcpt=${n} (queue active)`);
    out.push(`${as}disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=${n} data=1 quit=1 commands=${n + 4}`);
    const verdict = Number(hits) >= 5 ? 'SPAMMY' : 'CLEAN';
    out.push(
      outbound
        ? `${this.amavisTag(h)} Passed ${verdict} {RelayedOutbound}, ORIGINATING LOCAL [127.0.0.1]:${amPort} [${clientIp}] <${from}> -> ${rcptList}, Queue-ID: ${q1}, Message-ID: ${mid}, mail_id: ${mailId}, Hits: ${hits}, size: ${size}, queued_as: ${q2}, ${ms} ms`
        : `${this.amavisTag(h)} Passed ${verdict} {RelayedInbound}, [127.0.0.1]:${amPort} [${clientIp}] <${from}> -> ${rcptList}, Queue-ID: ${q1}, Message-ID: ${mid}, mail_id: ${mailId}, Hits: ${hits}, size: ${size}, queued_as: ${q2}, ${ms} ms`,
    );
    const hopDelay = ms / 1000 + r.next() * 0.3;
    for (const rc of rcpts) {
      out.push(`postfix/smtp[${hopPid}]: ${q1}: to=<${rc}>, relay=127.0.0.1[127.0.0.1]:10032, ${this.delays(hopDelay)}, dsn=2.0.0, status=sent (250 2.0.0 from MTA(smtp:[127.0.0.1]:10030): 250 2.0.0 Ok: queued as ${q2})`);
    }
    out.push(`${qm}${q1}: removed`);
    this.deliver(out, h, q2, mid, from, rcpts, size2, spamminess);
  }

  /** Final delivery of q2: LMTP for local recipients, SMTP for remote ones. */
  private deliver(out: string[], h: HostState, q2: string, mid: string, from: string, rcpts: string[], size: number, spamminess: number): void {
    const r = this.rng;
    const qm = `postfix/qmgr[${h.qmgr}]: `;
    let deferredAny = false;
    let bounced = false;
    const lmtpPid = this.poolPid(h.lmtp);
    const smtpPid = this.poolPid(h.smtp);
    for (const rc of rcpts) {
      const at = rc.lastIndexOf('@');
      const domain = rc.slice(at + 1);
      if (domain === LOCAL_DOMAIN) {
        if (r.chance(0.004)) {
          deferredAny = true;
          out.push(`postfix/lmtp[${lmtpPid}]: ${q2}: to=<${rc}>, relay=${MAILBOX_HOST}[${MAILBOX_IP}]:7025, ${this.delays(0.05 + r.next() * 0.3)}, dsn=4.2.2, status=deferred (host ${MAILBOX_HOST}[${MAILBOX_IP}] said: 452 4.2.2 Over quota (in reply to end of DATA command))`);
        } else {
          out.push(`postfix/lmtp[${lmtpPid}]: ${q2}: to=<${rc}>, relay=${MAILBOX_HOST}[${MAILBOX_IP}]:7025, ${this.delays(0.03 + r.next() * 0.4)}, dsn=2.0.0, status=sent (250 2.1.5 Delivery OK)`);
        }
        continue;
      }
      const rem = this.remote(domain);
      const u = r.next();
      const pDefer = 0.015 + spamminess * 0.3;
      const pBounce = 0.012 + spamminess * 0.15;
      if (u < pDefer) {
        deferredAny = true;
        out.push(`postfix/smtp[${smtpPid}]: ${q2}: to=<${rc}>, relay=${rem.relay}, ${this.delays(0.5 + r.next() * 30)}, dsn=4.7.0, status=deferred (${this.deferReason(rem.kind, rem.relay, h)})`);
      } else if (u < pDefer + pBounce) {
        bounced = true;
        const [dsn, why] = this.bounceReason(rem.kind, rem.relay, rc);
        out.push(`postfix/smtp[${smtpPid}]: ${q2}: to=<${rc}>, relay=${rem.relay}, ${this.delays(0.3 + r.next() * 3)}, dsn=${dsn}, status=bounced (${why})`);
      } else {
        out.push(`postfix/smtp[${smtpPid}]: ${q2}: to=<${rc}>, relay=${rem.relay}, ${this.delays(0.2 + r.next() * 4)}, dsn=2.0.0, status=sent (${this.sentReply(rem.kind, mid)})`);
      }
    }
    if (deferredAny && this.deferred.length < 5000) this.deferred.push({ host: h, qid: q2, from });
    if (bounced && from !== '') {
      const q3 = this.qid();
      out.push(`postfix/bounce[${this.poolPid(h.bounce)}]: ${q2}: sender non-delivery notification: ${q3}`);
      out.push(`postfix/cleanup[${this.poolPid(h.cleanup)}]: ${q3}: message-id=<${this.clock.compactStamp()}.${q3}@${MAILBOX_HOST}>`);
      const bsize = size + r.range(2000, 4000);
      out.push(`${qm}${q3}: from=<>, size=${bsize}, nrcpt=1 (queue active)`);
      if (!deferredAny) out.push(`${qm}${q2}: removed`);
      // The notification goes back to the (possibly forged) sender; a bounce of a bounce is dropped.
      this.deliver(out, h, q3, `<${q3}@${MAILBOX_HOST}>`, '', [from], bsize, spamminess > 0.5 ? 0.6 : 0);
      return;
    }
    if (!deferredAny) out.push(`${qm}${q2}: removed`);
  }

  /** Authenticated submission from a user's mail client (or from a spammer holding a stolen password). */
  private submissionFlow(h: HostState, spam: Episode | null): string[] {
    const r = this.rng;
    const out: string[] = [];
    let acct: string;
    let ip: string;
    let from: string;
    let rcpts: string[];
    if (spam) {
      acct = spam.victim;
      ip = r.pick(spam.ips);
      from = `${this.randStr(r.range(4, 8), ALNUM)}@${r.pick(FORGED_DOMAINS)}`;
      const k = r.range(5, 30);
      rcpts = [];
      for (let i = 0; i < k; i++) rcpts.push(`${this.randStr(r.range(5, 10), ALNUM)}@${r.pick(SPAM_RCPT_DOMAINS)}`);
    } else {
      const ai = this.accountIndex();
      acct = this.accounts[ai] as string;
      ip = this.userIp(ai);
      from = r.chance(0.97) ? acct : this.account(); // shared mailbox / alias, still local
      const k = r.chance(0.7) ? 1 : r.chance(0.7) ? r.range(2, 4) : r.range(5, 25);
      rcpts = [];
      for (let i = 0; i < k; i++) rcpts.push(this.outRecipient());
    }
    const p = this.newPid();
    const sp = `postfix/submission/smtpd[${p}]: `;
    const client = `unknown[${ip}]`;
    out.push(`${sp}connect from ${client}`);
    out.push(`${sp}Anonymous TLS connection established from ${client}: ${r.pick(TLS_IN)}`);
    out.push(`saslauthd[${this.poolPid(h.saslauthd)}]: auth_zimbra: ${acct} auth OK`);
    const q1 = this.qid();
    const mech = r.chance(0.8) ? 'LOGIN' : 'PLAIN';
    out.push(`${sp}${q1}: client=${client}, sasl_method=${mech}, sasl_username=${acct}`);
    const mid = this.messageId(spam ? from.slice(from.indexOf('@') + 1) : LOCAL_DOMAIN, !spam && r.chance(0.5));
    out.push(`postfix/cleanup[${this.poolPid(h.cleanup)}]: ${q1}: message-id=${mid}`);
    const size = spam ? r.range(2500, 9000) : this.size();
    const n = rcpts.length;
    out.push(`postfix/qmgr[${h.qmgr}]: ${q1}: from=<${from}>, size=${size}, nrcpt=${n} (queue active)`);
    out.push(`${sp}disconnect from ${client} ehlo=2 starttls=1 auth=1 mail=1 rcpt=${n} data=1 quit=1 commands=${n + 7}`);
    this.relayThroughAmavis(out, h, q1, mid, from, rcpts, size, ip, true, spam ? 0.9 : 0);
    return out;
  }

  /** Mail from the internet through postscreen, SPF and amavis to a mailbox. */
  private inboundFlow(h: HostState): string[] {
    const r = this.rng;
    const out: string[] = [];
    const ip = this.internetIp();
    const port = this.port();
    const spammy = r.chance(0.15);
    const domain = spammy ? `${this.randStr(r.range(5, 9), ALNUM)}.${r.pick(SPAM_TLDS)}` : this.remoteDomain();
    const from = spammy ? `${this.randStr(r.range(4, 9), ALNUM)}@${domain}` : r.chance(0.05) ? '' : `${this.localPart()}@${domain}`;
    const helo = domain === 'gmail.com' ? `mail-${this.randStr(3, ALNUM)}-f${r.range(41, 199)}.google.com` : `mail.${domain}`;
    const rdns = spammy && r.chance(0.6) ? 'unknown' : helo;
    const ps = `postfix/postscreen[${h.postscreen}]: `;
    out.push(`${ps}CONNECT from [${ip}]:${port} to [10.0.0.1]:25`);
    if (spammy && r.chance(0.4)) out.push(`postfix/dnsblog[${this.newPid()}]: addr ${ip} listed by domain ${r.pick(RBLS)} as 127.0.0.${r.range(2, 11)}`);
    out.push(r.chance(0.75) ? `${ps}PASS OLD [${ip}]:${port}` : `${ps}PASS NEW [${ip}]:${port}`);
    const p = this.newPid();
    const sp = `postfix/smtpd[${p}]: `;
    const client = `${rdns}[${ip}]`;
    out.push(`${sp}connect from ${client}`);
    const tls = r.chance(0.8);
    if (tls) out.push(`${sp}Anonymous TLS connection established from ${client}: ${r.pick(TLS_IN)}`);
    const k = r.chance(0.85) ? 1 : r.range(2, 4);
    const rcpts: string[] = [];
    for (let i = 0; i < k; i++) rcpts.push(this.account());
    const spf = spammy ? r.pick(['Softfail', 'None', 'Neutral', 'Pass']) : r.chance(0.85) ? 'Pass' : 'None';
    out.push(`policyd-spf[${this.newPid()}]: prepend Received-SPF: ${spf} (mailfrom) identity=mailfrom; client-ip=${ip}; helo=${helo}; envelope-from=${from}; receiver=${r.chance(0.5) ? '<UNKNOWN>' : rcpts[0]}`);
    const q1 = this.qid();
    out.push(`${sp}${q1}: client=${client}`);
    const mid = this.messageId(domain, false);
    out.push(`postfix/cleanup[${this.poolPid(h.cleanup)}]: ${q1}: message-id=${mid}`);
    const size = this.size();
    out.push(`postfix/qmgr[${h.qmgr}]: ${q1}: from=<${from}>, size=${size}, nrcpt=${k} (queue active)`);
    out.push(`${sp}disconnect from ${client} ehlo=${tls ? 2 : 1}${tls ? ' starttls=1' : ''} mail=1 rcpt=${k} data=1 quit=1 commands=${k + (tls ? 6 : 4)}`);
    this.relayThroughAmavis(out, h, q1, mid, from, rcpts, size, ip, false, spammy ? 0.9 : 0);
    return out;
  }

  /** Sessions refused before queueing, and password guessing. */
  private rejectFlow(h: HostState): string[] {
    const r = this.rng;
    const out: string[] = [];
    const ip = this.internetIp();
    const p = this.newPid();
    const kind = r.next();
    const spamFrom = `${this.randStr(r.range(3, 8), ALNUM)}@${this.randStr(r.range(4, 8), ALNUM)}.${r.pick(SPAM_TLDS)}`;
    const helo = r.chance(0.5) ? r.pick(BAD_HELOS) : `${this.randStr(6, ALNUM)}.${r.pick(SPAM_TLDS)}`;
    if (kind < 0.25) {
      // Relay attempt.
      const sp = `postfix/smtpd[${p}]: `;
      const client = `unknown[${ip}]`;
      const to = `${this.localPart()}@${this.remoteDomain()}`;
      out.push(`${sp}connect from ${client}`);
      out.push(`${sp}NOQUEUE: reject: RCPT from ${client}: 554 5.7.1 <${to}>: Relay access denied; from=<${spamFrom}> to=<${to}> proto=ESMTP helo=<${helo}>`);
      if (r.chance(0.5)) {
        out.push(`${sp}lost connection after RCPT from ${client}`);
        out.push(`${sp}disconnect from ${client} ehlo=1 mail=1 rcpt=0/1 commands=2/3`);
      } else {
        out.push(`${sp}disconnect from ${client} ehlo=1 mail=1 rcpt=0/1 rset=1 quit=1 commands=4/5`);
      }
    } else if (kind < 0.45) {
      // RBL, in smtpd or already in postscreen.
      const rbl = r.pick(RBLS);
      const to = this.account();
      if (r.chance(0.5)) {
        const port = this.port();
        const ps = `postfix/postscreen[${h.postscreen}]: `;
        out.push(`${ps}CONNECT from [${ip}]:${port} to [10.0.0.1]:25`);
        out.push(`postfix/dnsblog[${this.newPid()}]: addr ${ip} listed by domain ${rbl} as 127.0.0.${r.range(2, 4)}`);
        if (r.chance(0.3)) out.push(`${ps}PREGREET 11 after 0.${r.range(10, 99)} from [${ip}]:${port}: EHLO ${helo}\\r\\n`);
        out.push(`${ps}DNSBL rank ${r.range(2, 6)} for [${ip}]:${port}`);
        out.push(`${ps}NOQUEUE: reject: RCPT from [${ip}]:${port}: 550 5.7.1 Service unavailable; client [${ip}] blocked using ${rbl}; from=<${spamFrom}>, to=<${to}>, proto=ESMTP, helo=<${helo}>`);
        out.push(`${ps}DISCONNECT [${ip}]:${port}`);
      } else {
        const sp = `postfix/smtpd[${p}]: `;
        const client = `unknown[${ip}]`;
        out.push(`${sp}connect from ${client}`);
        const url = rbl === 'zen.spamhaus.org' ? `https://www.spamhaus.org/query/ip/${ip}` : rbl === 'bl.spamcop.net' ? `https://www.spamcop.net/bl.shtml?${ip}` : `http://www.barracudanetworks.com/reputation/?pr=1&ip=${ip}`;
        out.push(`${sp}NOQUEUE: reject: RCPT from ${client}: 554 5.7.1 Service unavailable; Client host [${ip}] blocked using ${rbl}; ${url}; from=<${spamFrom}> to=<${to}> proto=ESMTP helo=<${helo}>`);
        out.push(`${sp}disconnect from ${client} ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4`);
      }
    } else if (kind < 0.6) {
      // Recipient / client restrictions.
      const sp = `postfix/smtpd[${p}]: `;
      const client = r.chance(0.5) ? `unknown[${ip}]` : `mail.${this.remoteDomain()}[${ip}]`;
      out.push(`${sp}connect from ${client}`);
      const to = r.chance(0.5) ? this.account() : `${this.localPart()}@${LOCAL_DOMAIN}`;
      const reason = r.pick([
        `450 4.7.1 <${to}>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/${LOCAL_DOMAIN}.html`,
        `550 5.1.1 <${to}>: Recipient address rejected: ${LOCAL_DOMAIN}`,
        `450 4.7.1 Client host rejected: cannot find your hostname, [${ip}]`,
        `450 4.7.1 <${helo}>: Helo command rejected: Host not found`,
        `450 4.1.8 <${spamFrom}>: Sender address rejected: Domain not found`,
      ]);
      out.push(`${sp}NOQUEUE: reject: RCPT from ${client}: ${reason}; from=<${spamFrom}> to=<${to}> proto=ESMTP helo=<${helo}>`);
      out.push(`${sp}disconnect from ${client} ehlo=1 mail=1 rcpt=0/1 data=0/1 quit=1 commands=3/5`);
    } else {
      // SMTP AUTH password guessing on the submission port.
      const sp = `postfix/submission/smtpd[${p}]: `;
      const client = `unknown[${ip}]`;
      out.push(`${sp}connect from ${client}`);
      out.push(`${sp}Anonymous TLS connection established from ${client}: ${r.pick(TLS_IN)}`);
      const tries = r.chance(0.6) ? 1 : r.range(2, 5);
      const target = r.chance(0.7) ? this.account() : `${r.pick(['admin', 'test', 'info', 'sales', 'postmaster', 'webmaster', 'office'])}@${LOCAL_DOMAIN}`;
      for (let i = 0; i < tries; i++) {
        const sasl = this.poolPid(h.saslauthd);
        if (target.startsWith('user')) {
          out.push(`saslauthd[${sasl}]: auth_zimbra: ${target} auth failed: authentication failed for [${target}], invalid password`);
        } else {
          out.push(`saslauthd[${sasl}]: auth_zimbra: ${target} auth failed: authentication failed for [${target}], account not found`);
        }
        out.push(`${sp}warning: ${client}: SASL LOGIN authentication failed: ${r.chance(0.5) ? 'authentication failure' : 'UGFzc3dvcmQ6'}`);
      }
      const lost = r.chance(0.6);
      if (lost) out.push(`${sp}lost connection after AUTH from ${client}`);
      const ok = lost ? 3 : 4;
      out.push(`${sp}disconnect from ${client} ehlo=2 starttls=1 auth=0/${tries}${lost ? '' : ' quit=1'} commands=${ok}/${ok + tries}`);
    }
    return out;
  }

  /** Periodic statistics, expiries, local system mail, postscreen drops. */
  private noiseFlow(h: HostState): string[] {
    const r = this.rng;
    const out: string[] = [];
    const k = r.next();
    if (k < 0.25) {
      const d = this.deferred.length > 0 ? this.deferred.splice(r.int(Math.min(this.deferred.length, 50)), 1)[0] : undefined;
      if (d) {
        const q3 = this.qid();
        const qm = `postfix/qmgr[${d.host.qmgr}]: `;
        out.push(`${qm}${d.qid}: from=<${d.from}>, status=expired, returned to sender`);
        if (d.from !== '') {
          out.push(`postfix/bounce[${this.poolPid(d.host.bounce)}]: ${d.qid}: sender non-delivery notification: ${q3}`);
          out.push(`postfix/cleanup[${this.poolPid(d.host.cleanup)}]: ${q3}: message-id=<${this.clock.compactStamp()}.${q3}@${MAILBOX_HOST}>`);
          out.push(`${qm}${q3}: from=<>, size=${r.range(3000, 12000)}, nrcpt=1 (queue active)`);
        }
        out.push(`${qm}${d.qid}: removed`);
      } else {
        out.push(`postfix/qmgr[${h.qmgr}]: ${this.qid()}: from=<>, status=expired, returned to sender`);
      }
    } else if (k < 0.45) {
      const a = `postfix/anvil[${h.anvil}]: `;
      const ip = this.internetIp();
      const at = rfcStamp(this.clock.ms - r.range(5000, 300000));
      out.push(`${a}statistics: max connection rate ${r.range(1, 30)}/60s for (smtp:${ip}) at ${at}`);
      out.push(`${a}statistics: max connection count ${r.range(1, 8)} for (smtp:${ip}) at ${at}`);
      if (r.chance(0.5)) out.push(`${a}statistics: max message rate ${r.range(1, 20)}/60s for (submission:${this.accountIp[r.int(this.accountIp.length)]}) at ${at}`);
      out.push(`${a}statistics: max cache size ${r.range(1, 40)} at ${at}`);
    } else if (k < 0.6) {
      const s = `postfix/scache[${h.scache}]: `;
      out.push(`${s}statistics: start interval ${rfcStamp(this.clock.ms - r.range(60000, 600000))}`);
      out.push(`${s}statistics: domain lookup hits=${r.int(20)} miss=${r.range(1, 30)} success=${r.int(60)}%`);
      out.push(`${s}statistics: address lookup hits=${r.int(10)} miss=${r.range(1, 30)} success=${r.int(40)}%`);
      out.push(`${s}statistics: max simultaneous domains=1 addresses=${r.range(1, 3)} connection=${r.range(1, 3)}`);
    } else if (k < 0.8) {
      // Local system mail (zmstat, cron) through pickup.
      const q1 = this.qid();
      const from = r.chance(0.5) ? `zimbra@${MAILBOX_HOST}` : `root@${MAILBOX_HOST}`;
      const to = r.chance(0.8) ? `admin@${LOCAL_DOMAIN}` : this.account();
      out.push(`postfix/pickup[${this.newPid()}]: ${q1}: uid=${from.startsWith('zimbra') ? 998 : 0} from=<${from}>`);
      const mid = `<${this.clock.compactStamp()}.${q1}@${MAILBOX_HOST}>`;
      out.push(`postfix/cleanup[${this.poolPid(h.cleanup)}]: ${q1}: message-id=${mid}`);
      const size = r.range(600, 4000);
      out.push(`postfix/qmgr[${h.qmgr}]: ${q1}: from=<${from}>, size=${size}, nrcpt=1 (queue active)`);
      this.relayThroughAmavis(out, h, q1, mid, from, [to], size, '127.0.0.1', true, 0);
    } else {
      const ip = this.internetIp();
      const port = this.port();
      const ps = `postfix/postscreen[${h.postscreen}]: `;
      out.push(`${ps}CONNECT from [${ip}]:${port} to [10.0.0.1]:25`);
      const drop = r.int(4);
      if (drop < 2) {
        out.push(`${ps}PREGREET ${r.range(11, 40)} after 0.${r.range(10, 99)} from [${ip}]:${port}: EHLO ${r.pick(BAD_HELOS)}\\r\\n`);
        out.push(`${ps}DISCONNECT [${ip}]:${port}`);
      } else if (drop === 2) {
        out.push(`${ps}HANGUP after ${r.range(0, 9)}.${r.int(10)} from [${ip}]:${port} in tests after SMTP handshake`);
        out.push(`${ps}DISCONNECT [${ip}]:${port}`);
      } else {
        const p = this.newPid();
        out.push(`${ps}PASS OLD [${ip}]:${port}`);
        out.push(`postfix/smtpd[${p}]: connect from unknown[${ip}]`);
        out.push(`postfix/smtpd[${p}]: warning: hostname ${this.randStr(8, ALNUM)}.${r.pick(SPAM_TLDS)} does not resolve to address ${ip}: Name or service not known`);
        out.push(`postfix/smtpd[${p}]: lost connection after ${r.pick(['CONNECT', 'EHLO', 'STARTTLS'])} from unknown[${ip}]`);
        out.push(`postfix/smtpd[${p}]: disconnect from unknown[${ip}] ehlo=1 commands=1`);
      }
    }
    return out;
  }

  /** The spammer's first logins with the stolen password, from abroad. */
  private takeoverFlow(h: HostState, e: Episode): string[] {
    const r = this.rng;
    const out: string[] = [];
    const ip = e.ips[0] as string;
    if (r.chance(0.5)) {
      out.push(this.zimbraSoapFail(e.victim, this.foreignIp()));
      out.push(this.zimbraSoapFail(e.victim, this.foreignIp()));
    }
    out.push(`${ZMARK}INFO  [qtp1545357780-${r.range(100, 999)}:https://${MAILBOX_HOST}:443/service/soap/AuthRequest] [name=${e.victim};oip=${ip};ua=${r.pick(UAS)};] account - user ${e.victim} authenticated, mechanism=password`);
    out.push(`${ZMARK}INFO  [ImapSSLServer-${r.range(1, 80)}] [name=${e.victim};ip=${ip};] imap - user ${e.victim} authenticated, mechanism=PLAIN`);
    out.push(`saslauthd[${this.poolPid(h.saslauthd)}]: auth_zimbra: ${e.victim} auth OK`);
    return out;
  }

  private zimbraSoapFail(acct: string, ip: string): string {
    return `${ZMARK}WARN  [qtp1545357780-${this.rng.range(100, 999)}:https://${MAILBOX_HOST}:443/service/soap/AuthRequest] [name=${acct};oip=${ip};ua=${this.rng.pick(UAS)};] SoapEngine - handler exception: authentication failed for [${acct}], invalid password`;
  }

  /** One standalone mailbox.log / audit.log line (without its timestamp). */
  private zimbraLine(): string {
    const r = this.rng;
    const ai = this.accountIndex();
    const acct = this.accounts[ai] as string;
    const ip = this.userIp(ai);
    const k = r.next();
    if (k < 0.35) return `INFO  [ImapSSLServer-${r.range(1, 120)}] [name=${acct};ip=${ip};] imap - user ${acct} authenticated, mechanism=${r.pick(IMAP_MECHS)}`;
    if (k < 0.45) return `INFO  [Pop3SSLServer-${r.range(1, 40)}] [name=${acct};ip=${ip};] pop - user ${acct} authenticated, mechanism=LOGIN`;
    if (k < 0.62) return `INFO  [qtp1545357780-${r.range(100, 999)}:https://${MAILBOX_HOST}:443/service/soap/AuthRequest] [name=${acct};oip=${ip};ua=${r.pick(UAS)};] account - user ${acct} authenticated, mechanism=password`;
    if (k < 0.7) return `INFO  [qtp1545357780-${r.range(100, 999)}:https://${MAILBOX_HOST}:443/service/soap/AuthRequest] [name=${acct};oip=${ip};ua=${r.pick(UAS)};] security - cmd=Auth; account=${acct}; protocol=soap;`;
    if (k < 0.8) return `INFO  [LmtpServer-${r.range(1, 60)}] [name=${acct};mid=${r.range(2, 9000)};ip=10.0.0.1;] lmtp - Delivering message: size=${r.range(1, 900)} KB, nrcpts=1, sender=${this.localPart()}@${this.remoteDomain()}, msgid=<${this.randStr(14, ALNUM)}@${this.remoteDomain()}>`;
    // Failures: mostly from guessers, some users mistyping.
    const fip = r.chance(0.6) ? this.internetIp() : ip;
    const target = r.chance(0.9) ? acct : `${r.pick(['admin', 'test', 'info', 'sales'])}@${LOCAL_DOMAIN}`;
    if (k < 0.88) return this.zimbraSoapFail(target, fip).slice(1);
    if (k < 0.95) return `INFO  [ImapSSLServer-${r.range(1, 120)}] [ip=${fip};] imap - authentication failed for [${target}], invalid password`;
    return `INFO  [Pop3SSLServer-${r.range(1, 40)}] [ip=${fip};] pop - authentication failed for [${target}], invalid password`;
  }

  private spawn(): Flow {
    const h = this.host();
    this.flowCount++;
    if (this.flowCount >= this.nextEpisodeAt && this.episode === null) {
      const e: Episode = {
        victim: this.accounts[this.rng.int(this.accounts.length)] as string,
        ips: [],
        remaining: this.rng.range(80, 250),
      };
      const nip = this.rng.range(3, 12);
      for (let i = 0; i < nip; i++) e.ips.push(this.foreignIp());
      this.episode = e;
      this.nextEpisodeAt = this.flowCount + this.rng.range(15000, 30000);
      return { host: h, lines: this.takeoverFlow(h, e), i: 0 };
    }
    const e = this.episode;
    if (e !== null && this.rng.chance(0.25)) {
      if (--e.remaining <= 0) this.episode = null;
      return { host: h, lines: this.submissionFlow(h, e), i: 0 };
    }
    const u = this.rng.next();
    let lines: string[];
    if (u < 0.35) lines = this.submissionFlow(h, null);
    else if (u < 0.7) lines = this.inboundFlow(h);
    else if (u < 0.85) lines = this.rejectFlow(h);
    else lines = this.noiseFlow(h);
    return { host: h, lines, i: 0 };
  }

  nextLine(): string {
    const r = this.rng;
    const c = this.clock;
    // ~60 ms per line on average; twice as slow at night.
    const u = r.next();
    const base = c.hour < 7 || c.hour >= 21 ? 110 : 45;
    c.advance(Math.min(3000, Math.floor(-Math.log(1 - u) * base)));
    if (r.next() < 0.045) return c.isoPrefix() + this.zimbraLine();
    const active = this.active;
    while (active.length < 6) active.push(this.spawn());
    // Older flows are favoured a little so a flow finishes within seconds.
    const idx = r.next() < 0.5 ? 0 : r.int(active.length);
    const f = active[idx] as Flow;
    const line = f.lines[f.i++] as string;
    if (f.i >= f.lines.length) active.splice(idx, 1);
    if (line.charCodeAt(0) === 1) return c.isoPrefix() + line.slice(1);
    return `${c.rfcPrefix()}${f.host.name} ${line}`;
  }
}

/** Exactly `opts.lines` log lines, without trailing newlines. */
export function* generateLines(opts: GenerateOptions): Generator<string> {
  const n = Math.max(0, Math.floor(opts.lines));
  if (n === 0) return;
  const g = new LogGenerator(opts);
  for (let i = 0; i < n; i++) yield g.nextLine();
}

/** Write the generated log to `path` (newline-terminated lines), in ~1 MB writes. */
export async function writeLog(path: string, opts: GenerateOptions): Promise<{ lines: number; bytes: number }> {
  const out = createWriteStream(path);
  let lines = 0;
  let bytes = 0;
  let buf = '';
  const flush = async (): Promise<void> => {
    const chunk = buf;
    buf = '';
    bytes += Buffer.byteLength(chunk);
    // `once` rejects if the stream errors while we wait.
    if (!out.write(chunk)) await once(out, 'drain');
  };
  try {
    for (const line of generateLines(opts)) {
      buf += line + '\n';
      lines++;
      if (buf.length >= 1 << 20) await flush();
    }
    if (buf.length > 0) await flush();
    out.end();
    await finished(out);
  } catch (err) {
    out.destroy();
    throw err;
  }
  return { lines, bytes };
}
