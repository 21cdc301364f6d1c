/**
 * plaintext-auth: accounts whose password crosses the network in clear text.
 * A hardening finding (signal `plaintext-auth`, severity low): it never
 * locks anything, it tells the admin which accounts to move to TLS before
 * their password is sniffed.
 *
 * Sources:
 * - successful `auth` events the parser marks `tls: false` (Zimbra
 *   ImapServer/Pop3Server threads without `[TLS]`, Dovecot logins without
 *   `TLS`/`secured`), for the protocols in `protocols`. SOAP/HTTP are left
 *   out by default: Zimbra logs the proxy→mailbox hop (`http://...:80`), not
 *   what the browser used.
 * - SMTP AUTH (`smtp.client` with a SASL user) on an smtpd service in
 *   `smtpServices` when no inbound TLS handshake was logged for that
 *   (host, client IP) shortly before. Postfix logs handshakes only with
 *   `smtpd_tls_loglevel >= 1`; so by default SMTP is judged only on hosts
 *   that have logged at least one inbound handshake.
 *
 * Logins from loopback / our own mail hosts are not on the wire: ignored.
 * One finding per account per `cooldownMs` (a day).
 *
 * Distributed mode: whether a login was cleartext is judged in the client
 * IP's delivery (the handshakes seen per host and IP live there); the
 * finding and its cooldown are the account's, so it is handed off to the
 * account's delivery. Whether a host logs handshakes at all is site
 * knowledge (SiteKnowledge.logsTlsHandshakes), not any one client's.
 */
import { z } from 'zod';
import { authProtocols, type Event } from '../src/core/events.js';
import type { Source } from '../src/core/record.js';
import { accountRoute } from '../src/detect/route.js';
import { evidence, isAccountLogin, normAccount, passCooldown } from './account-util.js';
import { defineDetector } from './types.js';

const DAY = 86_400_000;

const config = z.object({
  /** Protocols whose cleartext logins are reported (from `auth` events with `tls: false`). */
  protocols: z.array(z.enum(authProtocols)).default(['imap', 'pop3', 'smtp', 'managesieve']),
  /** Postfix services whose SMTP AUTH without a prior TLS handshake is reported (`smtps` is TLS from the first byte). */
  smtpServices: z.array(z.string()).default(['smtpd', 'submission']),
  /** How long a logged TLS handshake from a (host, IP) covers that client's SMTP sessions. */
  smtpTlsTtlMs: z.number().int().positive().default(10 * 60_000),
  /** Judge SMTP AUTH only on hosts that log TLS handshakes at all (seen one within `tlsLoggingTtlMs`). */
  requireTlsLogging: z.boolean().default(true),
  /** How long one logged inbound handshake vouches that a host logs them. */
  tlsLoggingTtlMs: z.number().int().positive().default(7 * DAY),
  /** One finding per account per this long. */
  cooldownMs: z.number().int().positive().default(DAY),
  /** Most keys tracked per structure (least recently active are evicted). */
  maxKeys: z.number().int().positive().default(100_000),
});

const PLAIN_THREAD = /^(?:Imap|Pop3)Server-/;

/** A cleartext login, judged in the IP's delivery, reported in the account's. */
interface Cleartext {
  account: string;
  ip: string;
  ts: number;
  src: Source;
  protocol: string;
  detail: Record<string, unknown>;
}

function isCleartext(d: unknown): d is Cleartext {
  const x = d as Partial<Cleartext> | null;
  return (
    typeof x?.account === 'string' &&
    typeof x.ip === 'string' &&
    typeof x.ts === 'number' &&
    typeof x.src?.file === 'string' &&
    typeof x.src.offset === 'number' &&
    typeof x.protocol === 'string' &&
    typeof x.detail === 'object' &&
    x.detail !== null
  );
}

const protocolNames: Record<string, string> = {
  imap: 'IMAP',
  pop3: 'POP3',
  smtp: 'SMTP AUTH',
  managesieve: 'ManageSieve',
  soap: 'SOAP',
  http: 'HTTP',
  activesync: 'ActiveSync',
  lmtp: 'LMTP',
  other: 'a mail protocol',
};

export const plaintextAuthDetector = defineDetector({
  id: 'plaintext-auth',
  description: 'Accounts that log in over cleartext (POP3/IMAP without TLS, SMTP AUTH without STARTTLS): a hardening finding, never a lock.',
  config,
  events: ['auth', 'smtp.client', 'smtp.tls'],
  reads: (e) => (e.kind === 'smtp.tls' && e.direction === 'in' && e.ip !== undefined) || isAccountLogin(e),
  messages: false,
  create(cfg, { store, site, emit, owner, handOff }) {
    const protocols = new Set<string>(cfg.protocols);
    const smtpServices = new Set(cfg.smtpServices);
    const tlsSeen = store.recent<number>('tls', { ttlMs: cfg.smtpTlsTtlMs, maxKeys: cfg.maxKeys });
    const cool = store.recent<number>('cooldown', { ttlMs: cfg.cooldownMs, maxKeys: cfg.maxKeys });

    function report(account: string, ip: string, ts: number, src: Source, protocol: string, detail: Record<string, unknown>): void {
      if (owner.account(account)) emitOnce(account, ip, ts, src, protocol, detail);
      else handOff(accountRoute(account), { account, ip, ts, src, protocol, detail } satisfies Cleartext);
    }

    function emitOnce(account: string, ip: string, ts: number, src: Source, protocol: string, detail: Record<string, unknown>): void {
      if (!passCooldown(cool, account, ts, 'low')) return;
      const name = protocolNames[protocol] ?? protocol;
      emit({
        type: 'finding',
        detector: 'plaintext-auth',
        entity: { kind: 'account', id: account },
        severity: 'low',
        score: 10,
        ts,
        signals: ['plaintext-auth'],
        summary: `${account} logged in over cleartext ${name} (no TLS) from ${ip}: its password crosses the network unencrypted; require TLS for this client`,
        window: { protocol, cooldownMs: cfg.cooldownMs, ...detail },
        evidence: [evidence(src, ts, `${name} login without TLS`)],
        account,
        ip,
      });
    }

    function onEvent(e: Event): void {
      if (e.kind === 'smtp.tls') {
        // the host's "logs handshakes" is learnt by SiteKnowledge from this event
        if (e.direction !== 'in' || e.ip === undefined || !owner.ip(e.ip)) return;
        tlsSeen.set(`${e.host}|${e.ip}`, e.ts, e.ts);
      } else if (e.kind === 'auth') {
        if (e.outcome !== 'success' || e.ip === undefined || !protocols.has(e.protocol)) return;
        const plain = e.tls === false || (e.tls === undefined && e.thread !== undefined && PLAIN_THREAD.test(e.thread));
        // judged with the SMTP case in the IP's delivery, so an item's findings keep their standalone order
        if (!plain || site.isMailHost(e.ip) || !owner.ip(e.ip)) return;
        const account = normAccount(e.account);
        if (account === undefined) return;
        const detail: Record<string, unknown> = { source: e.source };
        if (e.thread !== undefined) detail.thread = e.thread;
        if (e.service !== undefined) detail.service = e.service;
        if (e.method !== undefined) detail.method = e.method;
        report(account, e.ip, e.ts, e.src, e.protocol, detail);
      } else if (e.kind === 'smtp.client') {
        if (e.account === undefined || !smtpServices.has(e.service) || site.isMailHost(e.ip) || !owner.ip(e.ip)) return;
        const key = `${e.host}|${e.ip}`;
        if (tlsSeen.get(key, e.ts) !== undefined) {
          tlsSeen.set(key, e.ts, e.ts); // a long TLS session keeps covering its mails
          return;
        }
        if (cfg.requireTlsLogging && !site.logsTlsHandshakes(e.host, e.ts, cfg.tlsLoggingTtlMs)) return;
        const account = normAccount(e.account);
        if (account === undefined) return;
        report(account, e.ip, e.ts, e.src, 'smtp', { service: e.service, saslMethod: e.saslMethod, host: e.host, smtpTlsTtlMs: cfg.smtpTlsTtlMs });
      }
    }

    return {
      onEvent,
      onHandOff(data) {
        if (!isCleartext(data)) return false;
        emitOnce(data.account, data.ip, data.ts, data.src, data.protocol, data.detail);
        return true;
      },
    };
  },
});
