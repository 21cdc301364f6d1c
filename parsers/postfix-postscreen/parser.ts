/**
 * postfix/postscreen: the zombie-blocking front of port 25. Every line about a
 * client becomes a `postscreen` event with its action, IP and port:
 *
 *   CONNECT from [ip]:port to [ip]:port          connect (detail: local [ip]:port)
 *   PASS NEW [ip]:port / PASS OLD [ip]:port      pass-new / pass-old
 *   DNSBL rank N for [ip]:port                   dnsbl (rank)
 *   PREGREET N after T from [ip]:port: text      pregreet (delay T, detail: text)
 *   HANGUP after T from [ip]:port in tests X     hangup (delay T, detail: X)
 *   DISCONNECT [ip]:port                         disconnect
 *   WHITELISTED|ALLOWLISTED [ip]:port            allowlisted
 *   BLACKLISTED|DENYLISTED [ip]:port             denylisted
 *   WHITELIST VETO|ALLOWLIST VETO [ip]:port      other (detail: allowlist veto)
 *   COMMAND PIPELINING from [ip]:port after C: text      command-pipelining (detail: `C: text`)
 *   NON-SMTP COMMAND from [ip]:port after C: text        non-smtp-command
 *   BARE NEWLINE from [ip]:port after C                  bare-newline (detail: C)
 *   COMMAND TIME|COUNT|LENGTH LIMIT from [ip]:port after C   command-*-limit
 *   NOQUEUE: reject: STAGE from [ip]:port: reply; from=<..>, to=<..>, proto=.., helo=<..>
 *                                                → postscreen noqueue + smtp.reject (service postscreen)
 * `cache ... full cleanup` and warnings are recognised without an event.
 */
import type { Event, EventOf } from '../../src/core/events.js';
import type { LogRecord } from '../../src/core/record.js';
import type { Parser } from '../types.js';
import { parseRejectLine } from '../postfix-smtpd/reject.js';
import { srcOf } from '../util.js';

type Postscreen = EventOf<'postscreen'>;
type Action = Postscreen['action'];

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

interface Peer {
  ip: string;
  port?: number;
  /** Index just past the port (or `]`). */
  end: number;
}

/** `[ip]:port` at `at` (IPv6 kept whole inside the brackets). */
function peerAt(s: string, at: number): Peer | undefined {
  if (s.charCodeAt(at) !== 91 /* [ */) return undefined;
  const close = s.indexOf(']', at + 1);
  if (close < 0) return undefined;
  const peer: Peer = { ip: s.slice(at + 1, close), end: close + 1 };
  if (s.charCodeAt(close + 1) === 58 /* : */) {
    let i = close + 2;
    let p = 0;
    while (i < s.length && isDigit(s.charCodeAt(i))) {
      p = p * 10 + (s.charCodeAt(i) - 48);
      i++;
    }
    if (i > close + 2) {
      peer.port = p;
      peer.end = i;
    }
  }
  return peer;
}

function emit(rec: LogRecord, out: Event[], action: Action, peer: Peer): Postscreen {
  const ev: Postscreen = { kind: 'postscreen', ts: rec.ts, host: rec.host, program: rec.program, src: srcOf(rec), action, ip: peer.ip };
  if (peer.port !== undefined) ev.port = peer.port;
  out.push(ev);
  return ev;
}

/** `[ip]:port` right at `at`, the whole rest of the line: one event. */
function simple(rec: LogRecord, msg: string, at: number, action: Action, out: Event[]): boolean {
  const peer = peerAt(msg, at);
  if (peer === undefined) return false;
  emit(rec, out, action, peer);
  return true;
}

/** Parse a decimal like `0.53` or `16` (time in seconds) in [start, end). */
function seconds(s: string, start: number, end: number): number | undefined {
  if (end <= start) return undefined;
  const v = Number(s.slice(start, end));
  return Number.isFinite(v) ? v : undefined;
}

/** `WHAT from [ip]:port after CMD[: text]` for the deep-protocol test failures. */
function afterTest(rec: LogRecord, msg: string, at: number, action: Action, out: Event[]): boolean {
  if (!msg.startsWith('from ', at)) return false;
  const peer = peerAt(msg, at + 5);
  if (peer === undefined) return false;
  const ev = emit(rec, out, action, peer);
  if (msg.startsWith(' after ', peer.end)) ev.detail = msg.slice(peer.end + 7);
  return true;
}

/** `PREGREET N after T from [ip]:port: text` / `HANGUP after T from [ip]:port in tests X`. */
function timed(rec: LogRecord, msg: string, at: number, action: Action, out: Event[]): boolean {
  const after = msg.indexOf('after ', at);
  if (after < 0) return false;
  const tStart = after + 6;
  const from = msg.indexOf(' from ', tStart);
  if (from < 0) return false;
  const peer = peerAt(msg, from + 6);
  if (peer === undefined) return false;
  const ev = emit(rec, out, action, peer);
  const delay = seconds(msg, tStart, from);
  if (delay !== undefined) ev.delay = delay;
  if (action === 'pregreet') {
    if (msg.startsWith(': ', peer.end)) ev.detail = msg.slice(peer.end + 2);
  } else if (msg.startsWith(' in tests ', peer.end)) {
    ev.detail = msg.slice(peer.end + 10);
  } else if (msg.startsWith(' in ', peer.end)) {
    ev.detail = msg.slice(peer.end + 4);
  }
  return true;
}

function onNoqueue(rec: LogRecord, msg: string, out: Event[]): boolean {
  const before = out.length;
  if (!parseRejectLine(rec, msg, 9, undefined, 'postscreen', out)) return false;
  const rej = out[before] as EventOf<'smtp.reject'>;
  // postscreen's own "too many connections" / "all server ports busy" refusals.
  if (rej.category === 'other' && rej.stage === 'CONNECT' && rej.reason.indexOf('busy') >= 0) rej.category = 'rate';
  if (rej.ip !== undefined) {
    const ev: Postscreen = { kind: 'postscreen', ts: rec.ts, host: rec.host, program: rec.program, src: srcOf(rec), action: 'noqueue', ip: rej.ip };
    const open = msg.indexOf('[', 9);
    const peer = open > 0 ? peerAt(msg, open) : undefined;
    if (peer?.port !== undefined) ev.port = peer.port;
    ev.detail = rej.reason;
    out.splice(before, 0, ev);
  }
  return true;
}

function parse(rec: LogRecord, out: Event[]): boolean {
  const msg = rec.message;
  switch (msg.charCodeAt(0)) {
    case 67 /* C */:
      if (msg.startsWith('CONNECT from ')) {
        const peer = peerAt(msg, 13);
        if (peer === undefined) return false;
        const ev = emit(rec, out, 'connect', peer);
        if (msg.startsWith(' to ', peer.end)) ev.detail = msg.slice(peer.end + 4);
        return true;
      }
      if (msg.startsWith('COMMAND PIPELINING ')) return afterTest(rec, msg, 19, 'command-pipelining', out);
      if (msg.startsWith('COMMAND TIME LIMIT ')) return afterTest(rec, msg, 19, 'command-time-limit', out);
      if (msg.startsWith('COMMAND COUNT LIMIT ')) return afterTest(rec, msg, 20, 'command-count-limit', out);
      if (msg.startsWith('COMMAND LENGTH LIMIT ')) return afterTest(rec, msg, 21, 'command-length-limit', out);
      break;
    case 80 /* P */:
      if (msg.startsWith('PASS OLD ')) return simple(rec, msg, 9, 'pass-old', out);
      if (msg.startsWith('PASS NEW ')) return simple(rec, msg, 9, 'pass-new', out);
      if (msg.startsWith('PREGREET ')) return timed(rec, msg, 9, 'pregreet', out);
      break;
    case 68 /* D */:
      if (msg.startsWith('DISCONNECT ')) return simple(rec, msg, 11, 'disconnect', out);
      if (msg.startsWith('DNSBL rank ')) {
        const forAt = msg.indexOf(' for ', 11);
        if (forAt < 0) return false;
        const peer = peerAt(msg, forAt + 5);
        if (peer === undefined) return false;
        const rank = Number(msg.slice(11, forAt));
        const ev = emit(rec, out, 'dnsbl', peer);
        if (Number.isFinite(rank)) ev.rank = rank;
        return true;
      }
      if (msg.startsWith('DENYLISTED ')) return simple(rec, msg, 11, 'denylisted', out);
      break;
    case 72 /* H */:
      if (msg.startsWith('HANGUP ')) return timed(rec, msg, 7, 'hangup', out);
      break;
    case 78 /* N */:
      if (msg.startsWith('NOQUEUE: ')) return onNoqueue(rec, msg, out);
      if (msg.startsWith('NON-SMTP COMMAND ')) return afterTest(rec, msg, 17, 'non-smtp-command', out);
      break;
    case 66 /* B */:
      if (msg.startsWith('BARE NEWLINE ')) return afterTest(rec, msg, 13, 'bare-newline', out);
      if (msg.startsWith('BLACKLISTED ')) return simple(rec, msg, 12, 'denylisted', out);
      break;
    case 87 /* W */:
      if (msg.startsWith('WHITELISTED ')) return simple(rec, msg, 12, 'allowlisted', out);
      if (msg.startsWith('WHITELIST VETO ')) return veto(rec, msg, 15, out);
      break;
    case 65 /* A */:
      if (msg.startsWith('ALLOWLISTED ')) return simple(rec, msg, 12, 'allowlisted', out);
      if (msg.startsWith('ALLOWLIST VETO ')) return veto(rec, msg, 15, out);
      break;
    case 99 /* c */:
      if (msg.startsWith('cache ')) return true;
      break;
    case 119 /* w */:
      if (msg.startsWith('warning: ')) return true;
      break;
    case 101 /* e */:
    case 102 /* f */:
    case 112 /* p */:
      if (msg.startsWith('fatal: ') || msg.startsWith('panic: ') || msg.startsWith('error: ')) return true;
      break;
  }
  return false;
}

function veto(rec: LogRecord, msg: string, at: number, out: Event[]): boolean {
  const peer = peerAt(msg, at);
  if (peer === undefined) return false;
  emit(rec, out, 'other', peer).detail = 'allowlist veto';
  return true;
}

export const postfixPostscreenParser: Parser = {
  id: 'postfix-postscreen',
  programs: ['postfix/postscreen'],
  parse,
};
