/**
 * Deterministic builders of realistic log episodes for the end-to-end
 * scenario tests (test/scenarios.test.ts) and the bundled demo log
 * (bench/build-demo.ts).
 *
 * Lines have the shapes of a Zimbra 8/9 server (see parsers/<name>/fixtures
 * and bench/generate.ts): RFC 3164 syslog from Postfix, amavis, saslauthd and
 * policyd-spf (`Nov 27 10:00:01 mx1 postfix/qmgr[812]: ...`) and Zimbra's
 * mailbox.log (`2026-11-27 10:00:01,123 INFO  [ImapSSLServer-3] [...] ...`).
 * Every message goes through the amavis re-injection hop (submission/smtpd →
 * 127.0.0.1:10032 → amavisd/smtpd → final delivery) with unique 10-hex-digit
 * queue ids, so the correlator must follow the hop to attribute deliveries.
 *
 * A builder appends timestamped entries to a `ScenarioLog` (from a given start
 * and pace); `render()` sorts them by time (stable: a flow's lines keep their
 * order) and formats the envelopes. Timestamps are UTC. No Math.random, no
 * clock: a seeded PRNG drives everything.
 */

import { Rng as BaseRng } from './generate.js';

export const HOUR = 3_600_000;
export const MIN = 60_000;
export const DAY = 86_400_000;

export const LOCAL_DOMAIN = 'example.com';
export const MAILBOX_HOST = 'mail.example.com';
export const MAILBOX_IP = '10.0.0.5';
/** The server's public address (site.outboundIps). */
export const OUTBOUND_IP = '198.51.100.10';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const TLS_IN = ['TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)', 'TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)'];
const ALNUM = 'abcdefghijklmnopqrstuvwxyz0123456789';
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const HEX = '0123456789ABCDEF';
const UAS = ['ZimbraWebClient - FF120 (Win)/8.8.15_GA_4179', 'ZimbraWebClient - GC120 (Mac)/9.0.0_GA_4546'];

/** Correspondents' domains (real-looking, spread over providers). */
export const PARTNER_DOMAINS = [
  'gmail.com', 'outlook.com', 'yahoo.com', 'hotmail.com', 'acme-supplies.de', 'northwind.co.uk', 'contoso.fr',
  'fabrikam.it', 'globex.nl', 'initech.es', 'umbrella.pl', 'stark-ind.se', 'wayne-ent.be', 'cyberdyne.at',
];
export const SPAM_RCPT_DOMAINS = ['yahoo.com.tw', 'hotmail.com', 'gmail.com', 'yahoo.com', 'msa.hinet.net', 'outlook.com', 'qq.com', '163.com'];

// ---------------------------------------------------------------------------

/** The generator's PRNG plus random strings for forged addresses and ids. */
export class Rng extends BaseRng {
  str(n: number, alphabet = ALNUM): string {
    let s = '';
    for (let i = 0; i < n; i++) s += alphabet[this.int(alphabet.length)];
    return s;
  }
}

interface Entry {
  ts: number;
  seq: number;
  /** Zimbra mailbox.log line (ISO envelope, no host) or syslog line (host + program). */
  zimbra: boolean;
  text: string;
}

export type Fate = 'sent' | 'bounced' | 'deferred';

export interface SubmitOptions {
  account?: string;
  ip: string;
  /** Client host name in `name[ip]`; default `unknown`. */
  rdns?: string;
  from: string;
  rcpts: string[];
  /** Per-recipient outcome; default: all delivered. */
  fate?: (rcpt: string, i: number) => Fate;
  /**
   * Postfix's retries of the deferred recipients, each deferred again: up to
   * this many, at about 5, 15, 35 and 75 min after the first attempt and
   * then every 67 min (minimal_backoff_time 300 s doubling up to
   * maximal_backoff_time 4000 s). Default none: the message simply stays queued.
   */
  retries?: number;
  /** smtpd service: `submission` (587, SASL) or `smtpd` (port 25). Default submission when an account is given. */
  service?: 'submission' | 'smtps' | 'smtpd';
  /** Amavis score band. */
  spammy?: boolean;
  /** Lines logged during the session before the queue id is assigned (e.g. policyd-spf). */
  beforeQueue?: string[];
}

/** Collects timestamped log entries; `render()` gives the lines in time order. */
export class ScenarioLog {
  readonly rng: Rng;
  private readonly entries: Entry[] = [];
  private seq = 0;
  private qcount: number;
  private pid: number;
  private midCounter = 500_000;
  readonly host: string;

  constructor(seed = 1, host = 'mx1') {
    this.rng = new Rng(seed * 2654435761);
    this.qcount = this.rng.int(1 << 20);
    this.pid = this.rng.range(2000, 9000);
    this.host = host;
  }

  get size(): number {
    return this.entries.length;
  }

  /** A syslog line (`program[pid]: message`) at ts. */
  sys(ts: number, text: string): void {
    this.entries.push({ ts: Math.floor(ts), seq: this.seq++, zimbra: false, text });
  }

  /** A mailbox.log line (`INFO  [thread] [ctx] ...`) at ts. */
  zimbra(ts: number, text: string): void {
    this.entries.push({ ts: Math.floor(ts), seq: this.seq++, zimbra: true, text });
  }

  newPid(): number {
    this.pid += this.rng.range(1, 7);
    if (this.pid > 32000) this.pid = this.rng.range(300, 1300);
    return this.pid;
  }

  /** Unique 10-hex-digit queue id. */
  qid(): string {
    const c = this.qcount++;
    const lo = Math.imul(c, 2654435761) >>> 0;
    const hi = this.rng.int(256);
    let s = HEX[hi >>> 4]! + HEX[hi & 15]!;
    for (let i = 28; i >= 0; i -= 4) s += HEX[(lo >>> i) & 15];
    return s;
  }

  // -- flows ------------------------------------------------------------------------------

  /**
   * One message submitted at t: SMTP session (with SASL when `account` is
   * given), cleanup/qmgr, the amavis hop, final delivery (LMTP for local
   * recipients, SMTP for remote ones), non-delivery notices for bounces.
   * Returns the first hop's queue id.
   */
  submit(t: number, o: SubmitOptions): string {
    const r = this.rng;
    let ts = t;
    const step = (lo: number, hi: number): number => (ts += r.range(lo, hi));
    const service = o.service ?? (o.account !== undefined ? 'submission' : 'smtpd');
    const prog = service === 'smtpd' ? 'postfix/smtpd' : `postfix/${service}/smtpd`;
    const p = this.newPid();
    const sp = `${prog}[${p}]: `;
    const client = `${o.rdns ?? 'unknown'}[${o.ip}]`;
    this.sys(ts, `${sp}connect from ${client}`);
    this.sys(step(20, 120), `${sp}Anonymous TLS connection established from ${client}: ${r.pick(TLS_IN)}`);
    if (o.account !== undefined) this.sys(step(20, 200), `saslauthd[${1200 + r.int(5)}]: auth_zimbra: ${o.account} auth OK`);
    for (const l of o.beforeQueue ?? []) this.sys(step(20, 200), l);
    const q1 = this.qid();
    const sasl = o.account !== undefined ? `, sasl_method=${r.chance(0.8) ? 'LOGIN' : 'PLAIN'}, sasl_username=${o.account}` : '';
    this.sys(step(5, 60), `${sp}${q1}: client=${client}${sasl}`);
    const fromDomain = o.from.slice(o.from.indexOf('@') + 1) || LOCAL_DOMAIN;
    this.midCounter += r.range(1, 30);
    const mid = o.account !== undefined && fromDomain === LOCAL_DOMAIN && r.chance(0.5)
      ? `<${r.range(100000000, 2147483647)}.${this.midCounter}.${ts}.JavaMail.zimbra@${LOCAL_DOMAIN}>`
      : `<${r.str(8, HEX.toLowerCase())}-${r.str(4, HEX.toLowerCase())}-${r.str(12, HEX.toLowerCase())}@${fromDomain}>`;
    this.sys(step(5, 40), `postfix/cleanup[${3100 + r.int(4)}]: ${q1}: message-id=${mid}`);
    const size = o.spammy ? r.range(2500, 9000) : r.range(1800, 60000);
    const n = o.rcpts.length;
    this.sys(step(5, 40), `postfix/qmgr[812]: ${q1}: from=<${o.from}>, size=${size}, nrcpt=${n} (queue active)`);
    const auth = o.account !== undefined ? ' auth=1' : '';
    this.sys(step(5, 60), `${sp}disconnect from ${client} ehlo=2 starttls=1${auth} mail=1 rcpt=${n} data=1 quit=1 commands=${n + (o.account !== undefined ? 7 : 6)}`);

    // amavis hop
    const q2 = this.qid();
    const ap = this.newPid();
    const as = `postfix/amavisd/smtpd[${ap}]: `;
    const amPid = 7400 + r.int(10);
    const amPort = r.range(32768, 60999);
    const mailId = r.str(12, B64);
    const hits = o.spammy ? (3 + r.next() * 4).toFixed(3) : (-3 + r.next() * 3).toFixed(3);
    const outbound = o.account !== undefined || service === 'smtpd' && !o.rcpts.every((x) => x.endsWith(`@${LOCAL_DOMAIN}`));
    const ms = r.range(150, 1500);
    step(100, 400);
    this.sys(step(1, 5), `${as}connect from localhost[127.0.0.1]`);
    this.sys(step(1, 5), `${as}${q2}: client=localhost[127.0.0.1]`);
    this.sys(step(1, 5), `postfix/cleanup[${3100 + r.int(4)}]: ${q2}: message-id=${mid}`);
    const size2 = size + r.range(400, 1400);
    this.sys(step(1, 5), `postfix/qmgr[812]: ${q2}: from=<${o.from}>, size=${size2}, nrcpt=${n} (queue active)`);
    this.sys(step(1, 5), `${as}disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=${n} data=1 quit=1 commands=${n + 4}`);
    const list = `<${o.rcpts.join('>,<')}>`;
    const verdict = Number(hits) >= 5 ? 'SPAMMY' : 'CLEAN';
    this.sys(
      step(1, 5),
      outbound
        ? `amavis[${amPid}]: (${amPid}-${r.range(10, 99)}) Passed ${verdict} {RelayedOutbound}, ORIGINATING LOCAL [127.0.0.1]:${amPort} [${o.ip}] <${o.from}> -> ${list}, Queue-ID: ${q1}, Message-ID: ${mid}, mail_id: ${mailId}, Hits: ${hits}, size: ${size}, queued_as: ${q2}, ${ms} ms`
        : `amavis[${amPid}]: (${amPid}-${r.range(10, 99)}) Passed ${verdict} {RelayedInbound}, [127.0.0.1]:${amPort} [${o.ip}] <${o.from}> -> ${list}, Queue-ID: ${q1}, Message-ID: ${mid}, mail_id: ${mailId}, Hits: ${hits}, size: ${size}, queued_as: ${q2}, ${ms} ms`,
    );
    const hopPid = 5300 + r.int(8);
    for (const rc of o.rcpts) {
      this.sys(step(1, 5), `postfix/smtp[${hopPid}]: ${q1}: to=<${rc}>, relay=127.0.0.1[127.0.0.1]:10032, delay=${(ms / 1000 + 0.3).toFixed(1)}, delays=0.05/0/0.01/${(ms / 1000).toFixed(2)}, dsn=2.0.0, status=sent (250 2.0.0 from MTA(smtp:[127.0.0.1]:10030): 250 2.0.0 Ok: queued as ${q2})`);
    }
    this.sys(step(1, 5), `postfix/qmgr[812]: ${q1}: removed`);

    // final delivery
    let bounced = false;
    let deferred = false;
    const smtpPid = 5400 + r.int(8);
    const lmtpPid = 5500 + r.int(3);
    const held: string[] = []; // deferred recipients
    let firstAttempt = 0;
    for (let i = 0; i < n; i++) {
      const rc = o.rcpts[i]!;
      const dom = rc.slice(rc.lastIndexOf('@') + 1);
      if (dom === LOCAL_DOMAIN) {
        this.sys(step(20, 200), `postfix/lmtp[${lmtpPid}]: ${q2}: to=<${rc}>, relay=${MAILBOX_HOST}[${MAILBOX_IP}]:7025, delay=0.4, delays=0.1/0/0.1/0.2, dsn=2.0.0, status=sent (250 2.1.5 Delivery OK)`);
        continue;
      }
      const fate = o.fate?.(rc, i) ?? 'sent';
      const relay = remoteRelay(dom, r);
      const rhost = relay.slice(0, relay.lastIndexOf(':'));
      if (fate === 'sent') {
        this.sys(step(50, 900), `postfix/smtp[${smtpPid}]: ${q2}: to=<${rc}>, relay=${relay}, delay=1.2, delays=0.1/0.01/0.4/0.7, dsn=2.0.0, status=sent (250 2.0.0 OK ${r.str(12)})`);
      } else if (fate === 'bounced') {
        bounced = true;
        this.sys(step(50, 900), `postfix/smtp[${smtpPid}]: ${q2}: to=<${rc}>, relay=${relay}, delay=0.9, delays=0.1/0.01/0.4/0.4, dsn=5.1.1, status=bounced (host ${rhost} said: 550 5.1.1 <${rc}>: Recipient address rejected: User unknown (in reply to RCPT TO command))`);
      } else {
        deferred = true;
        this.sys(step(50, 900), deferLine(smtpPid, q2, rc, relay, '2.1', '0.1'));
        held.push(rc);
        firstAttempt ||= ts;
      }
    }
    const retries = Math.min(o.retries ?? 0, 12);
    for (let k = 0, at = firstAttempt, backoff = 300_000; held.length > 0 && k < retries; k++) {
      at += backoff + r.range(0, 60_000);
      backoff = Math.min(backoff * 2, 4_000_000);
      this.sys(at, `postfix/qmgr[812]: ${q2}: from=<${o.from}>, size=${size2}, nrcpt=${n} (queue active)`);
      let t2 = at;
      for (const rc of held) {
        t2 += r.range(50, 400);
        const queued = ((t2 - firstAttempt) / 1000).toFixed(0);
        this.sys(t2, deferLine(5400 + r.int(8), q2, rc, remoteRelay(rc.slice(rc.lastIndexOf('@') + 1), r), queued, queued));
      }
    }
    if (bounced && o.from !== '') {
      const q3 = this.qid();
      this.sys(step(5, 40), `postfix/bounce[${6100 + r.int(2)}]: ${q2}: sender non-delivery notification: ${q3}`);
      this.sys(step(1, 10), `postfix/cleanup[${3100 + r.int(4)}]: ${q3}: message-id=<${stamp(ts)}.${q3}@${MAILBOX_HOST}>`);
      this.sys(step(1, 10), `postfix/qmgr[812]: ${q3}: from=<>, size=${size2 + 2500}, nrcpt=1 (queue active)`);
      const fd = o.from.slice(o.from.lastIndexOf('@') + 1);
      if (fd === LOCAL_DOMAIN) {
        this.sys(step(20, 200), `postfix/lmtp[${lmtpPid}]: ${q3}: to=<${o.from}>, relay=${MAILBOX_HOST}[${MAILBOX_IP}]:7025, delay=0.2, delays=0.1/0/0.05/0.05, dsn=2.0.0, status=sent (250 2.1.5 Delivery OK)`);
      } else {
        this.sys(step(50, 900), `postfix/smtp[${smtpPid}]: ${q3}: to=<${o.from}>, relay=${remoteRelay(fd, r)}, delay=1, delays=0.1/0/0.4/0.5, dsn=2.0.0, status=sent (250 ok dirdel)`);
      }
      this.sys(step(1, 10), `postfix/qmgr[812]: ${q3}: removed`);
    }
    if (!deferred) this.sys(step(1, 10), `postfix/qmgr[812]: ${q2}: removed`);
    return q1;
  }

  /** Mail from the internet to local users (postscreen, SPF, amavis, LMTP). */
  inbound(t: number, o: { ip: string; from: string; rcpts: string[]; helo?: string; spf?: string; dnsbl?: string }): string {
    const r = this.rng;
    let ts = t;
    const step = (lo: number, hi: number): number => (ts += r.range(lo, hi));
    const port = r.range(30000, 65000);
    const helo = o.helo ?? `mail.${o.from.slice(o.from.indexOf('@') + 1) || 'example.net'}`;
    this.sys(ts, `postfix/postscreen[801]: CONNECT from [${o.ip}]:${port} to [10.0.0.1]:25`);
    if (o.dnsbl !== undefined) {
      this.sys(step(50, 300), `postfix/dnsblog[${this.newPid()}]: addr ${o.ip} listed by domain ${o.dnsbl} as 127.0.0.2`);
      this.sys(step(50, 300), `postfix/postscreen[801]: DNSBL rank 3 for [${o.ip}]:${port}`);
    }
    this.sys(step(50, 600), `postfix/postscreen[801]: PASS OLD [${o.ip}]:${port}`);
    const spf = o.spf ?? 'Pass';
    if (spf === 'Fail') {
      const p = this.newPid();
      const sp = `postfix/smtpd[${p}]: `;
      const client = `${helo}[${o.ip}]`;
      this.sys(step(1, 20), `${sp}connect from ${client}`);
      this.sys(step(20, 120), `${sp}Anonymous TLS connection established from ${client}: ${r.pick(TLS_IN)}`);
      this.sys(step(20, 200), `policyd-spf[${this.newPid()}]: Fail; identity=mailfrom; client-ip=${o.ip}; helo=${helo}; envelope-from=${o.from}; receiver=${o.rcpts[0]}`);
      this.sys(step(1, 20), `policyd-spf[${this.pid}]: 550 5.7.23 Message rejected due to: SPF fail - not authorized. Please see http://www.openspf.net/Why?s=mfrom;id=${o.from};ip=${o.ip};r=<UNKNOWN>`);
      this.sys(step(1, 20), `${sp}NOQUEUE: reject: RCPT from ${client}: 550 5.7.23 <${o.rcpts[0]}>: Recipient address rejected: Message rejected due to: SPF fail - not authorized. Please see http://www.openspf.net/Why?s=mfrom;id=${o.from};ip=${o.ip};r=<UNKNOWN>; from=<${o.from}> to=<${o.rcpts[0]}> proto=ESMTP helo=<${helo}>`);
      this.sys(step(20, 200), `${sp}disconnect from ${client} ehlo=2 starttls=1 mail=1 rcpt=0/1 quit=1 commands=5/6`);
      return '';
    }
    const spfLine = `policyd-spf[${this.newPid()}]: prepend Received-SPF: ${spf} (mailfrom) identity=mailfrom; client-ip=${o.ip}; helo=${helo}; envelope-from=${o.from}; receiver=${o.rcpts[0]}`;
    return this.submit(step(1, 20), { ip: o.ip, rdns: helo, service: 'smtpd', from: o.from, rcpts: o.rcpts, beforeQueue: [spfLine] });
  }

  /** The lines in time order, envelopes formatted. */
  render(): string[] {
    const es = this.entries.slice().sort((a, b) => a.ts - b.ts || a.seq - b.seq);
    const out: string[] = new Array<string>(es.length);
    for (let i = 0; i < es.length; i++) {
      const e = es[i]!;
      out[i] = e.zimbra ? `${isoStamp(e.ts)} ${e.text}` : `${rfcStamp(e.ts)} ${this.host} ${e.text}`;
    }
    return out;
  }
}

function remoteRelay(domain: string, r: Rng): string {
  switch (domain) {
    case 'gmail.com':
      return `gmail-smtp-in.l.google.com[142.250.${r.range(100, 150)}.27]:25`;
    case 'yahoo.com':
    case 'yahoo.com.tw':
      return `mta${r.range(5, 7)}.am0.yahoodns.net[67.195.${r.range(204, 228)}.${r.range(70, 79)}]:25`;
    case 'outlook.com':
    case 'hotmail.com':
      return `${domain.replace('.', '-')}.olc.protection.outlook.com[52.101.${r.range(8, 73)}.${r.range(1, 40)}]:25`;
    default: {
      let h = 2166136261;
      for (let i = 0; i < domain.length; i++) h = Math.imul(h ^ domain.charCodeAt(i), 16777619);
      h >>>= 0;
      return `mx${1 + (h & 1)}.${domain}[${45 + (h % 150)}.${(h >>> 8) & 255}.${(h >>> 16) & 255}.${1 + ((h >>> 24) % 254)}]:25`;
    }
  }
}

const P2: string[] = [];
for (let i = 0; i < 100; i++) P2.push(i < 10 ? `0${i}` : String(i));

/** `Nov 27 10:01:02` */
export function rfcStamp(ms: number): string {
  const d = new Date(ms);
  const day = d.getUTCDate();
  return `${MONTHS[d.getUTCMonth()]} ${day < 10 ? ` ${day}` : day} ${P2[d.getUTCHours()]}:${P2[d.getUTCMinutes()]}:${P2[d.getUTCSeconds()]}`;
}

/** `2026-11-27 10:01:02,345` */
export function isoStamp(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace('.', ',').slice(0, 23);
}

function stamp(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:T]/g, '').slice(0, 14);
}

// ---------------------------------------------------------------------------
// Zimbra mailbox.log lines

export function imapLogin(log: ScenarioLog, t: number, account: string, ip: string): void {
  log.zimbra(t, `INFO  [ImapSSLServer-${log.rng.range(1, 80)}] [name=${account};ip=${ip};] imap - user ${account} authenticated, mechanism=PLAIN`);
}

export function imapFail(log: ScenarioLog, t: number, account: string, ip: string): void {
  log.zimbra(t, `INFO  [ImapSSLServer-${log.rng.range(1, 80)}] [ip=${ip};] imap - authentication failed for [${account}], invalid password`);
}

export function soapLogin(log: ScenarioLog, t: number, account: string, ip: string): void {
  log.zimbra(t, `INFO  [qtp1545357780-${log.rng.range(100, 999)}:https://${MAILBOX_HOST}:443/service/soap/AuthRequest] [name=${account};oip=${ip};ua=${log.rng.pick(UAS)};] account - user ${account} authenticated, mechanism=password`);
}

export function soapFail(log: ScenarioLog, t: number, account: string, ip: string): void {
  log.zimbra(t, `WARN  [qtp1545357780-${log.rng.range(100, 999)}:https://${MAILBOX_HOST}:443/service/soap/AuthRequest] [name=${account};oip=${ip};ua=${log.rng.pick(UAS)};] SoapEngine - handler exception: authentication failed for [${account}], invalid password`);
}

/** A failed SMTP AUTH on the submission port (Postfix warning + saslauthd). */
export function smtpAuthFail(log: ScenarioLog, t: number, account: string, ip: string): void {
  const p = log.newPid();
  const sp = `postfix/submission/smtpd[${p}]: `;
  log.sys(t, `${sp}connect from unknown[${ip}]`);
  log.sys(t + 150, `saslauthd[${1200 + log.rng.int(5)}]: auth_zimbra: ${account} auth failed: authentication failed for [${account}], invalid password`);
  log.sys(t + 160, `${sp}warning: unknown[${ip}]: SASL LOGIN authentication failed: authentication failure, sasl_username=${account}`);
  log.sys(t + 300, `${sp}lost connection after AUTH from unknown[${ip}]`);
  log.sys(t + 301, `${sp}disconnect from unknown[${ip}] ehlo=1 auth=0/1 commands=1/2`);
}

// ---------------------------------------------------------------------------
// Background: normal days on the server

export interface User {
  account: string;
  /** The user's usual address (home/office NAT). */
  ip: string;
  /** Mails per working hour, on average. */
  rate: number;
}

/** `n` ordinary users, each from their own usual /24. */
export function users(n: number, seed = 7): User[] {
  const r = new Rng(seed);
  const names = ['anna', 'john', 'maria', 'peter', 'li.wei', 'sara', 'tom', 'olga', 'ivan', 'lucas', 'emma', 'noah', 'mia', 'sofia', 'david', 'chen', 'yuki', 'hans', 'marta', 'paolo', 'jorge', 'fatima', 'omar', 'priya', 'raj', 'nina', 'alex', 'sam', 'kim', 'lee'];
  const out: User[] = [];
  for (let i = 0; i < n; i++) {
    const name = i < names.length ? names[i]! : `user${i}`;
    out.push({ account: `${name}@${LOCAL_DOMAIN}`, ip: `${r.pick([81, 82, 88, 89, 90, 91, 93, 94, 95])}.${r.range(10, 250)}.${r.range(0, 255)}.${r.range(2, 250)}`, rate: 0.5 + r.next() * 2 });
  }
  return out;
}

export interface BackgroundOptions {
  start: number;
  end: number;
  users: User[];
  /** Inbound messages per hour from the internet (spread over the users). */
  inboundPerHour?: number;
}

/**
 * Ordinary traffic: during working hours (07–19 UTC) each user sends a few
 * mails an hour (mostly to the same correspondents, some to colleagues) and
 * logs in over IMAP/webmail from the usual IP; inbound mail and newsletters
 * arrive around the clock.
 */
export function background(log: ScenarioLog, o: BackgroundOptions): void {
  const r = log.rng;
  const contacts = new Map<string, string[]>();
  for (const u of o.users) {
    const c: string[] = [];
    for (let i = 0; i < 6; i++) c.push(`${r.pick(['info', 'sales', 'j.doe', 'm.rossi', 'orders', 'k.tanaka', 'support', 'l.martin'])}@${r.pick(PARTNER_DOMAINS)}`);
    contacts.set(u.account, c);
  }
  const inbound = o.inboundPerHour ?? 20;
  for (let h = Math.floor(o.start / HOUR) * HOUR; h < o.end; h += HOUR) {
    const hour = new Date(h).getUTCHours();
    const working = hour >= 7 && hour < 19;
    for (const u of o.users) {
      if (working) {
        // a login or two per hour from the usual place
        if (r.chance(0.8)) imapLogin(log, h + r.int(HOUR), u.account, u.ip);
        if (r.chance(0.3)) soapLogin(log, h + r.int(HOUR), u.account, u.ip);
        let k = 0;
        const lambda = u.rate;
        // Poisson-ish count
        for (let x = r.next(); x > Math.exp(-lambda) && k < 8; x *= r.next()) k++;
        for (let i = 0; i < k; i++) {
          const t = h + r.int(HOUR - 30_000);
          const rc: string[] = [];
          const nr = r.chance(0.7) ? 1 : r.range(2, 4);
          for (let j = 0; j < nr; j++) rc.push(r.chance(0.25) ? r.pick(o.users).account : r.pick(contacts.get(u.account)!));
          log.submit(t, { account: u.account, ip: u.ip, from: u.account, rcpts: [...new Set(rc)], fate: () => (r.chance(0.01) ? 'bounced' : 'sent') });
        }
      } else if (r.chance(0.05)) {
        imapLogin(log, h + r.int(HOUR), u.account, u.ip);
      }
    }
    const nIn = working ? inbound : Math.ceil(inbound / 4);
    for (let i = 0; i < nIn; i++) {
      const dom = r.pick(PARTNER_DOMAINS);
      const ip = `${r.range(40, 200)}.${r.range(0, 255)}.${r.range(0, 255)}.${r.range(2, 250)}`;
      log.inbound(h + r.int(HOUR - 30_000), { ip, from: `${r.pick(['news', 'info', 'j.doe', 'billing', 'noreply'])}@${dom}`, rcpts: [r.pick(o.users).account], helo: `mail.${dom}` });
    }
  }
}

/**
 * A newsletter account (own sender, usual IP) sending `perHour` messages an
 * hour around the clock to a stable list of subscribers, each message to a
 * handful of them, with a normal bounce rate. `peak` multiplies the rate
 * for hours in [peakFrom, peakTo).
 */
export function newsletter(
  log: ScenarioLog,
  o: { account: string; ip: string; start: number; end: number; perHour: number; rcptsPerMsg?: number; subscribers?: number; peak?: { from: number; to: number; factor: number } },
): void {
  const r = log.rng;
  const subs: string[] = [];
  const nSubs = o.subscribers ?? 400;
  const doms = ['gmail.com', 'yahoo.com', 'outlook.com', 'hotmail.com', 'gmx.de', 'web.de', 'orange.fr', 'libero.it', 'free.fr', 't-online.de', 'btinternet.com', 'wanadoo.fr', 'aol.com', 'icloud.com', 'mail.ru'];
  for (let i = 0; i < nSubs; i++) subs.push(`${r.str(r.range(4, 9))}@${r.pick(doms)}`);
  let cursor = 0;
  const per = o.rcptsPerMsg ?? 4;
  for (let h = o.start; h < o.end; h += HOUR) {
    const inPeak = o.peak !== undefined && h >= o.peak.from && h < o.peak.to;
    const n = Math.round(o.perHour * (inPeak ? o.peak!.factor : 1) * (0.9 + r.next() * 0.2));
    for (let i = 0; i < n; i++) {
      const t = h + Math.floor(((i + r.next()) * HOUR) / n);
      const rc: string[] = [];
      for (let j = 0; j < per; j++) rc.push(subs[cursor++ % subs.length]!);
      log.submit(t, { account: o.account, ip: o.ip, from: o.account, rcpts: rc, fate: () => (r.chance(0.02) ? 'bounced' : 'sent') });
    }
  }
}

// ---------------------------------------------------------------------------
// Episodes

function randomRecipients(r: Rng, n: number, domains: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(`${r.str(r.range(5, 10))}@${r.pick(domains)}`);
  return out;
}

/** Spam recipient domains: the big providers plus harvested small domains (many distinct). */
function harvestedDomain(r: Rng): string {
  return r.chance(0.5) ? r.pick(SPAM_RCPT_DOMAINS) : `${r.str(r.range(5, 9))}.${r.pick(['com.tw', 'com', 'net', 'jp', 'com.cn', 'co.kr'])}`;
}

/** A receiver throttling our outbound IP: Yahoo's TSS04. */
function deferLine(pid: number, qid: string, rc: string, relay: string, delay: string, queued: string): string {
  const rhost = relay.slice(0, relay.lastIndexOf(':'));
  return `postfix/smtp[${pid}]: ${qid}: to=<${rc}>, relay=${relay}, delay=${delay}, delays=${queued}/0.01/0.6/1.4, dsn=4.7.0, status=deferred (host ${rhost} said: 421 4.7.0 [TSS04] Messages from ${OUTBOUND_IP} temporarily deferred due to unexpected volume or user complaints (in reply to MAIL FROM command))`;
}

/** Spam to harvested addresses: most delivered, some bounced, a few deferred by Yahoo. */
function spamFate(r: Rng, bounceRate: number, deferRate?: number): (rc: string) => Fate {
  if (deferRate !== undefined) return () => (r.chance(deferRate) ? 'deferred' : r.chance(bounceRate) ? 'bounced' : 'sent');
  return (rc) => (r.chance(bounceRate) ? 'bounced' : rc.includes('@yahoo') && r.chance(0.1) ? 'deferred' : 'sent');
}

/**
 * The attack builders return `takeoverTs`: the time of the first line in which
 * the intruder uses the account (a login, or the first message it sends), from
 * which the scenario tests measure how long the lock takes.
 */
export interface Takeover {
  takeoverTs: number;
}

/**
 * (a) Forged-sender flood: the spammer logs in with a stolen password (webmail
 * and SMTP AUTH from a foreign IP) and sends `count` messages as random
 * senders at yahoo.com.tw, each to several harvested recipients, every
 * `paceMs`. `firstTs` is the flood's start (its first message at most
 * paceMs/2 later); the webmail login comes 40 s before it. `deferRate`: the
 * share of recipients the receiving servers defer (throttling a spam run);
 * a message with one of them stays in the queue, retried 4 times in the
 * next 75 min and deferred each time.
 */
export function forgedSenderFlood(log: ScenarioLog, o: { account: string; ips: string[]; start: number; count: number; paceMs: number; domain?: string; bounceRate?: number; deferRate?: number }): { firstTs: number } & Takeover {
  const r = log.rng;
  soapLogin(log, o.start - 40_000, o.account, o.ips[0]!);
  imapLogin(log, o.start - 30_000, o.account, o.ips[0]!);
  for (let i = 0; i < o.count; i++) {
    const t = o.start + i * o.paceMs + r.int(Math.max(1, o.paceMs >> 1));
    const rc: string[] = [];
    const k = r.range(5, 20);
    for (let j = 0; j < k; j++) rc.push(`${r.str(r.range(5, 10))}@${harvestedDomain(r)}`);
    log.submit(t, { account: o.account, ip: r.pick(o.ips), from: `${r.str(r.range(4, 8))}@${o.domain ?? 'yahoo.com.tw'}`, rcpts: rc, spammy: true, fate: spamFate(r, o.bounceRate ?? 0.15, o.deferRate), retries: o.deferRate !== undefined ? 4 : 0 });
  }
  return { firstTs: o.start, takeoverTs: o.start - 40_000 };
}

/** (b) Own-sender flood from a network never seen for the account. */
export function ownSenderFlood(log: ScenarioLog, o: { account: string; ip: string; start: number; perHour: number; minutes: number; deferRate?: number }): Takeover {
  const r = log.rng;
  const n = Math.round((o.perHour * o.minutes) / 60);
  const pace = (o.minutes * MIN) / n;
  for (let i = 0; i < n; i++) {
    const rc: string[] = [];
    const k = r.range(1, 4);
    for (let j = 0; j < k; j++) rc.push(`${r.str(r.range(5, 10))}@${harvestedDomain(r)}`);
    log.submit(o.start + Math.floor(i * pace), { account: o.account, ip: o.ip, from: o.account, rcpts: rc, spammy: true, fate: spamFate(r, 0.12, o.deferRate), retries: o.deferRate !== undefined ? 4 : 0 });
  }
  return { takeoverTs: o.start };
}

/**
 * (c) Low-and-slow fan-out: a message every ~`paceMs` to a few recipients at
 * distinct external (mostly made-up) domains; about half bounce (5xx).
 */
export function lowAndSlowFanout(log: ScenarioLog, o: { account: string; ip: string; start: number; count: number; paceMs: number; bounceRate?: number }): void {
  const r = log.rng;
  for (let i = 0; i < o.count; i++) {
    const rc: string[] = [];
    const k = r.range(2, 4);
    for (let j = 0; j < k; j++) rc.push(`${r.pick(['info', 'sales', 'contact', 'office', 'admin'])}@${r.str(r.range(5, 9))}.${r.pick(['com', 'net', 'org', 'biz', 'info'])}`);
    log.submit(o.start + i * o.paceMs + r.int(o.paceMs >> 2), { account: o.account, ip: o.ip, from: o.account, rcpts: rc, fate: () => (r.chance(o.bounceRate ?? 0.5) ? 'bounced' : 'sent') });
  }
}

/** (d) Password spraying: one IP tries `accounts` (one or two passwords each) over IMAP/SOAP/SMTP AUTH. */
export function passwordSpray(log: ScenarioLog, o: { ip: string; accounts: string[]; start: number; paceMs: number }): void {
  const r = log.rng;
  let t = o.start;
  for (const a of o.accounts) {
    const tries = r.range(1, 2);
    for (let i = 0; i < tries; i++) {
      const k = r.int(3);
      if (k === 0) imapFail(log, t, a, o.ip);
      else if (k === 1) soapFail(log, t, a, o.ip);
      else smtpAuthFail(log, t, a, o.ip);
      t += o.paceMs + r.int(o.paceMs);
    }
  }
}

/**
 * (e) Distributed brute force: `ips` each fail a few times on one account
 * over `spanMs`; then the last IP logs in and the account sends spam as itself.
 */
export function distributedBruteForce(log: ScenarioLog, o: { account: string; ips: string[]; start: number; spanMs: number; thenSend: number }): { successTs: number; winner: string } & Takeover {
  const r = log.rng;
  const tries = o.ips.length * 3;
  for (let i = 0; i < tries; i++) {
    const ip = o.ips[i % o.ips.length]!;
    const t = o.start + Math.floor((i * o.spanMs) / tries);
    if (r.chance(0.5)) imapFail(log, t, o.account, ip);
    else smtpAuthFail(log, t, o.account, ip);
  }
  const winner = o.ips[o.ips.length - 1]!;
  const successTs = o.start + o.spanMs + 20_000;
  imapLogin(log, successTs, o.account, winner);
  for (let i = 0; i < o.thenSend; i++) {
    const rc = randomRecipients(r, r.range(3, 10), SPAM_RCPT_DOMAINS);
    log.submit(successTs + 60_000 + i * 8_000, { account: o.account, ip: winner, from: o.account, rcpts: rc, spammy: true, fate: spamFate(r, 0.2) });
  }
  return { successTs, winner, takeoverTs: successTs };
}

/** (f) A client inside a too-wide mynetworks relays to external recipients without SASL (port 25). */
export function trustedNetworkRelay(log: ScenarioLog, o: { ip: string; rdns?: string; start: number; count: number; paceMs: number }): void {
  const r = log.rng;
  for (let i = 0; i < o.count; i++) {
    log.submit(o.start + i * o.paceMs, { ip: o.ip, rdns: o.rdns ?? 'unknown', service: 'smtpd', from: `${r.str(6)}@${r.pick(['hotmail.com', 'yahoo.com.tw', LOCAL_DOMAIN])}`, rcpts: randomRecipients(r, r.range(3, 8), SPAM_RCPT_DOMAINS), spammy: true, fate: spamFate(r, 0.2) });
  }
}

/**
 * (g) An RBL-listed IP: postscreen/dnsblog show it listed (it was probing our
 * MX), then it logs in with a stolen password and sends spam as the account.
 */
export function listedIpLogin(log: ScenarioLog, o: { account: string; ip: string; start: number; send: number; paceMs: number; list?: string }): Takeover {
  const r = log.rng;
  const list = o.list ?? 'zen.spamhaus.org';
  const port = r.range(30000, 65000);
  log.sys(o.start, `postfix/postscreen[801]: CONNECT from [${o.ip}]:${port} to [10.0.0.1]:25`);
  log.sys(o.start + 200, `postfix/dnsblog[${log.newPid()}]: addr ${o.ip} listed by domain ${list} as 127.0.0.4`);
  log.sys(o.start + 400, `postfix/postscreen[801]: DNSBL rank 3 for [${o.ip}]:${port}`);
  log.sys(o.start + 500, `postfix/postscreen[801]: NOQUEUE: reject: RCPT from [${o.ip}]:${port}: 550 5.7.1 Service unavailable; client [${o.ip}] blocked using ${list}; from=<${r.str(6)}@hotmail.com>, to=<${o.account}>, proto=ESMTP, helo=<User>`);
  log.sys(o.start + 600, `postfix/postscreen[801]: DISCONNECT [${o.ip}]:${port}`);
  const t0 = o.start + 5 * MIN;
  for (let i = 0; i < o.send; i++) {
    const rc = randomRecipients(r, r.range(5, 15), SPAM_RCPT_DOMAINS);
    log.submit(t0 + i * o.paceMs, { account: o.account, ip: o.ip, from: o.account, rcpts: rc, spammy: true, fate: spamFate(r, 0.15) });
  }
  return { takeoverTs: t0 }; // the listing lines before it are the IP probing our MX, not yet the account
}

/** A login + sending burst with no listing lines (for the active-DNS variant of g). */
export function loginAndSend(log: ScenarioLog, o: { account: string; ip: string; start: number; send: number; paceMs: number }): Takeover {
  const r = log.rng;
  imapLogin(log, o.start, o.account, o.ip);
  for (let i = 0; i < o.send; i++) {
    const rc = randomRecipients(r, r.range(5, 15), SPAM_RCPT_DOMAINS);
    log.submit(o.start + MIN + i * o.paceMs, { account: o.account, ip: o.ip, from: o.account, rcpts: rc, spammy: true, fate: spamFate(r, 0.15) });
  }
  return { takeoverTs: o.start };
}

/** (h) Inbound mail claiming to be from OUR domain, from an outside IP, failing SPF. */
export function inboundSpfFail(log: ScenarioLog, o: { ip: string; from: string; rcpts: string[]; start: number; paceMs: number }): void {
  for (let i = 0; i < o.rcpts.length; i++) {
    log.inbound(o.start + i * o.paceMs, { ip: o.ip, from: o.from, rcpts: [o.rcpts[i]!], helo: 'mail.example-com.biz', spf: 'Fail' });
  }
}

/** (x) A legitimate announcement from hr@ to many colleagues, in batches of 50 recipients, from the usual IP. */
export function announcement(log: ScenarioLog, o: { account: string; ip: string; start: number; recipients: string[] }): void {
  const batch = 50;
  for (let i = 0; i < o.recipients.length; i += batch) {
    log.submit(o.start + (i / batch) * 20_000, { account: o.account, ip: o.ip, from: o.account, rcpts: o.recipients.slice(i, i + batch) });
  }
}

/** (z) A user mistypes the password once or twice, then logs in from the usual IP and sends a mail. */
export function passwordTypo(log: ScenarioLog, o: { account: string; ip: string; start: number; failures: number; to: string }): void {
  for (let i = 0; i < o.failures; i++) imapFail(log, o.start + i * 8_000, o.account, o.ip);
  imapLogin(log, o.start + o.failures * 8_000 + 5_000, o.account, o.ip);
  log.submit(o.start + 2 * MIN, { account: o.account, ip: o.ip, from: o.account, rcpts: [o.to] });
}

/** Local colleagues' addresses (for the announcement): `n` addresses at the local domain. */
export function staff(n: number): string[] {
  const out: string[] = [];
  for (let i = 1; i <= n; i++) out.push(`staff${String(i).padStart(3, '0')}@${LOCAL_DOMAIN}`);
  return out;
}
