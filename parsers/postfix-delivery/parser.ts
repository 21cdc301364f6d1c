/**
 * Postfix delivery agents: smtp, lmtp, local, virtual, pipe, error, retry,
 * discard (and `relay`, the smtp service name some setups log under).
 *
 * The line that matters is the delivery status (`QID: to=<...>, relay=...,
 * status=...`) → `delivery`; outbound TLS handshakes → `smtp.tls` (direction
 * out). The rest (remote replies, lost connections, PIX workarounds, TLS
 * trouble, warnings) is recognised without an event: the delivery status
 * line that follows carries the outcome.
 */
import type { Event } from '../../src/core/events.js';
import type { LogRecord } from '../../src/core/record.js';
import type { Parser } from '../types.js';
import { leadingQueueId, parseClient, postfixService, srcOf } from '../util.js';
import { isDiagnostic, parseDeliveryLine } from './line.js';

/** Lines after `QID: ` that are known and carry no event of their own. */
const QID_PHRASES = [
  'host ', // host X[ip] said: ... / refused to talk to me: ...
  'lost connection with ',
  'conversation with ',
  'connect to ',
  'enabling PIX workarounds',
  'Cannot start TLS',
  'TLS is required, but ',
  'SASL authentication failed',
  'SASL [CACHED] authentication failed',
  'breaking line > ',
  'server certificate verification failed',
  'certificate verification failed',
  'Server certificate not ',
  'Server hostname ',
  'mapping DSN status ',
  'unable to ',
  'cannot ',
  'discarding EHLO keywords: ',
] as const;

/** Lines without a queue id that are known and carry no event. */
const PHRASES = [
  'connect to ',
  'discarding EHLO keywords: ',
  'SSL_connect error to ',
  'setting up TLS connection to ',
  'Host offered STARTTLS: ',
  'server certificate verification failed',
  'certificate verification failed',
  'Server certificate not ',
  'Server hostname ',
  'host ',
  'lost connection with ',
  'conversation with ',
  'enabling PIX workarounds',
  'Cannot start TLS',
  'TLS is required, but ',
  'SASL authentication failed',
  'statistics: ',
  'using cached session',
  'save session ',
  'reusing connection',
  'unable to ',
] as const;

/** Header/body-check actions (smtp_header_checks, smtp_body_checks) logged by the smtp client. */
const CHECK_ACTIONS = [
  'replace: ',
  'warning: ',
  'discard: ',
  'reject: ',
  'prepend: ',
  'info: ',
  'strip: ',
] as const;

const TLS_ESTABLISHED = 'TLS connection established to ';

function startsWithAny(msg: string, p: number, list: readonly string[]): boolean {
  for (const s of list) if (msg.startsWith(s, p)) return true;
  return false;
}

/**
 * `[Trust ]TLS connection established to host[ip]:port: TLSv1.3 with cipher C (256/256 bits) ...`
 * Returns false when the line is not one.
 */
function parseTlsOut(rec: LogRecord, msg: string, p: number, out: Event[]): boolean {
  let trust: string | undefined;
  let at = p;
  if (!msg.startsWith(TLS_ESTABLISHED, p)) {
    const sp = msg.indexOf(' ', p);
    if (sp < 0 || !msg.startsWith(TLS_ESTABLISHED, sp + 1)) return false;
    trust = msg.slice(p, sp);
    at = sp + 1;
  }
  const hostStart = at + TLS_ESTABLISHED.length;
  const close = msg.indexOf(']', hostStart);
  const sep = msg.indexOf(': ', close < 0 ? hostStart : close);
  if (sep < 0) return true; // recognised, but no protocol/cipher to report
  const protoStart = sep + 2;
  const with_ = msg.indexOf(' with cipher ', protoStart);
  if (with_ < 0) return true;
  const cStart = with_ + 13;
  let cEnd = msg.indexOf(' ', cStart);
  if (cEnd < 0) cEnd = msg.length;
  const e: Extract<Event, { kind: 'smtp.tls' }> = {
    kind: 'smtp.tls',
    ts: rec.ts,
    host: rec.host,
    program: rec.program,
    src: srcOf(rec),
    service: postfixService(rec.program),
    direction: 'out',
    tlsProtocol: msg.slice(protoStart, with_),
    cipher: msg.slice(cStart, cEnd),
  };
  const c = parseClient(msg, hostStart, sep);
  if (c !== undefined) {
    e.ip = c.ip;
    e.clientHost = c.clientHost;
  } else {
    e.clientHost = msg.slice(hostStart, sep);
  }
  if (trust !== undefined) e.trust = trust;
  out.push(e);
  return true;
}

function agentOf(program: string): string {
  return program.slice(program.lastIndexOf('/') + 1);
}

export const postfixDeliveryParser: Parser = {
  id: 'postfix-delivery',
  programs: [
    'postfix/smtp',
    'postfix/lmtp',
    'postfix/local',
    'postfix/virtual',
    'postfix/pipe',
    'postfix/error',
    'postfix/relay',
    'postfix/retry',
    'postfix/discard',
  ],
  parse(rec: LogRecord, out: Event[]): boolean {
    const msg = rec.message;
    const qid = leadingQueueId(msg);
    if (qid !== '') {
      const p = qid.length + 2;
      if (msg.startsWith('to=<', p)) return parseDeliveryLine(rec, msg, qid, p, agentOf(rec.program), out);
      if (startsWithAny(msg, p, QID_PHRASES)) return true;
      if (startsWithAny(msg, p, CHECK_ACTIONS)) return true;
      if (msg.indexOf(TLS_ESTABLISHED, p) >= 0) return parseTlsOut(rec, msg, p, out);
      // `statistics: ...` also looks like `QID: ...`: fall through.
    }
    if (isDiagnostic(msg)) return true;
    if (msg.indexOf(TLS_ESTABLISHED) >= 0) return parseTlsOut(rec, msg, 0, out);
    return startsWithAny(msg, 0, PHRASES);
  },
};
