/**
 * What travels on floodgate's Kafka topics.
 *
 * Lines topic: one Kafka message carries a chunk of consecutive lines of one
 * file (a follower batch), not one line per message: per-message overhead in
 * kafkajs and the broker would otherwise dominate. A chunk is a JSON header,
 * a newline, then the lines joined by newlines (a line never contains one).
 * Offsets are delta-encoded; `source` identifies the file across renames
 * (dev/ino/head fingerprint) so the parse stage can drop lines it already
 * took when the shipper re-sends a batch after a crash.
 *
 * Events topic: one Kafka message carries the items (events and correlated
 * messages) a parse batch produced for one partition, one per line. Each item
 * names its route (the entity whose partition it is in): an item about an
 * account and an IP travels twice, once per route. A line is a short header,
 * a tab, the route key as a JSON string, a tab, and the body as JSON (JSON
 * text holds no raw tab nor newline):
 *
 *     e a 1 0 \t "user@example.com" \t {"kind":"auth",...}
 *     | | | `- index in its line (events; empty otherwise)
 *     | | `--- 1: the copy the detect stage stores, 0: not (none of an item's copies is when the parse stage stored it)
 *     | `----- route: a(ccount), i(p), h(ost)
 *     `------- body: e(vent), m(essage), s(ubmission: a message as queued,
 *              see Correlator's onSubmission), r(ecipients settled: a held
 *              message's, see Correlator's onSettled), h(and-off {"d":detector,"x":data})
 *
 * (without the spaces). The body text comes out as it went in, so the
 * detect stage stores it as the row's json instead of serialising the event
 * again. Lines of the first version (one JSON object per item) are still
 * read, for a rolling upgrade.
 *
 * No string here is longer than BLOCK_BYTES: records are cut at that size
 * and decoded a block of lines at a time. V8 puts every string over 128 KiB
 * in its own freshly mapped pages (large-object space) and unmaps them when
 * the string dies, so each big record cost dozens of page faults; in these
 * VMs a fault costs microseconds, and decoding a 256 KiB record ran at
 * 230 MB/s against 3.4 GB/s for 96 KiB (the detect stage spent 12% of its
 * time there).
 */
import type { Event } from '../core/events.js';
import type { Message } from '../correlator/message.js';
import type { EnvelopeFormat } from '../envelope/envelope.js';
import { FloodgateError } from '../core/errors.js';

export interface LineChunk {
  /** Host for lines without one (mailbox.log) and the shipper's identity. */
  host: string;
  /** Path as configured on the shipping host. */
  file: string;
  /** Stable identity of the file being read (survives renames). */
  source: string;
  format: EnvelopeFormat;
  /** File mtime when read (ms): reference for RFC 3164 year inference. */
  mtime: number;
  offsets: number[];
  lines: string[];
}

interface ChunkHeader {
  v: 1;
  host: string;
  file: string;
  source: string;
  format: EnvelopeFormat;
  mtime: number;
  /** offsets[0], then differences. */
  d: number[];
}

/** The most text decoded or encoded as one string (see the header): well under V8's 128 KiB large-object size. */
export const BLOCK_BYTES = 64 * 1024;

/**
 * `buf.toString('utf8', start, end).split('\n')`, without a string longer
 * than a block (one line longer than a block aside): decoded a block of
 * whole lines at a time. A cut at a newline byte never splits a UTF-8
 * sequence, so the text is the same.
 */
export function linesOf(buf: Buffer, start = 0, end = buf.length): string[] {
  if (end - start <= BLOCK_BYTES) return buf.toString('utf8', start, end).split('\n');
  const out: string[] = [];
  let from = start;
  while (end - from > BLOCK_BYTES) {
    let nl = buf.lastIndexOf(10, from + BLOCK_BYTES - 1);
    if (nl < from) nl = buf.indexOf(10, from + BLOCK_BYTES); // a line longer than a block: whole
    if (nl < 0 || nl >= end) break;
    for (const line of buf.toString('utf8', from, nl).split('\n')) out.push(line);
    from = nl + 1;
  }
  for (const line of buf.toString('utf8', from, end).split('\n')) out.push(line);
  return out;
}

export function encodeChunk(c: LineChunk): Buffer {
  if (c.offsets.length !== c.lines.length) throw new Error('encodeChunk: offsets and lines differ in length');
  const d = new Array<number>(c.offsets.length);
  let prev = 0;
  for (let i = 0; i < c.offsets.length; i++) {
    d[i] = c.offsets[i]! - prev;
    prev = c.offsets[i]!;
  }
  const header: ChunkHeader = { v: 1, host: c.host, file: c.file, source: c.source, format: c.format, mtime: c.mtime, d };
  return Buffer.from(JSON.stringify(header) + '\n' + c.lines.join('\n'), 'utf8');
}

/** Throws FG_WIRE_INVALID for anything that is not a chunk this version wrote. */
export function decodeChunk(buf: Buffer): LineChunk {
  const nl = buf.indexOf(10);
  let h: ChunkHeader;
  try {
    h = JSON.parse(buf.toString('utf8', 0, nl < 0 ? buf.length : nl)) as ChunkHeader;
  } catch {
    throw new FloodgateError('FG_WIRE_INVALID', 'line chunk header is not JSON');
  }
  if (h === null || typeof h !== 'object' || h.v !== 1 || typeof h.host !== 'string' || typeof h.file !== 'string' || typeof h.source !== 'string' || !Array.isArray(h.d) || typeof h.mtime !== 'number') {
    throw new FloodgateError('FG_WIRE_INVALID', 'line chunk header has an unknown version or shape');
  }
  const lines = h.d.length === 0 ? [] : nl < 0 ? [''] : linesOf(buf, nl + 1);
  if (lines.length !== h.d.length) throw new FloodgateError('FG_WIRE_INVALID', `line chunk holds ${lines.length} lines but ${h.d.length} offsets`);
  const offsets = new Array<number>(h.d.length);
  let at = 0;
  for (let i = 0; i < h.d.length; i++) {
    const step = h.d[i];
    if (typeof step !== 'number' || !Number.isSafeInteger(step)) throw new FloodgateError('FG_WIRE_INVALID', 'line chunk offsets are not integers');
    at += step;
    offsets[i] = at;
  }
  return { host: h.host, file: h.file, source: h.source, format: h.format, mtime: h.mtime, offsets, lines };
}

export type RouteKind = 'account' | 'ip' | 'host';

/** One delivery on the events topic. */
export interface RoutedItem {
  route: { kind: RouteKind; key: string };
  /** The copy the detect stage stores (ClickHouse rows are written once per item): the first route, unless the parse stage stored the item itself (then no copy is). */
  primary: boolean;
  /** For an event: its index among its line's events (part of its stored identity). */
  n?: number;
  event?: Event;
  message?: Message;
  /** A message as it was queued (see Correlator's onSubmission): detection only, never stored. */
  submission?: Message;
  /** A held message with the recipients settled now (see Correlator's onSettled): detection only, never stored. */
  settled?: Message;
  /** Data a detector handed to its own instance in the partition owning `route` (see DetectionEngine.onHandOff). */
  handOff?: { detector: string; data: unknown };
  /** The event's or message's JSON (what JSON.stringify of it gives), set by decoding: the text as it travelled, which a detect stage storing the item keeps as the row's json, and which encoding again sends unchanged. */
  json?: string;
  /** The item as its wire line (routedLine), set by the parse stage instead of `event`/`message` so it holds no object of the event until its transaction commits. */
  line?: string;
}

interface WireItem {
  r: 'a' | 'i' | 'h';
  k: string;
  p?: 1;
  n?: number;
  e?: Event;
  m?: Message;
  h?: { d: string; x: unknown };
}

const kindToTag = { account: 'a', ip: 'i', host: 'h' } as const;
const tagToKind = { a: 'account', i: 'ip', h: 'host' } as const;

/**
 * Items as lines, cut into records of at most `maxBytes` (about: one item
 * may exceed it alone), so no record hits the broker's message size limit
 * and no record's text is a large string (see the header).
 * An item that carries `json` (its body, serialised once for all its
 * routes by whoever routed it) is not serialised again.
 */
export function encodeItems(items: readonly RoutedItem[], maxBytes = BLOCK_BYTES): Buffer[] {
  const out: Buffer[] = [];
  let parts: string[] = [];
  let size = 0;
  for (let i = 0; i < items.length; i++) {
    const it = items[i]!;
    const line = it.line ?? encodeItem(it);
    // Characters, not bytes: exact for the ASCII most items are, and what bounds the string.
    if (parts.length > 0 && size + line.length > maxBytes) {
      out.push(Buffer.from(parts.join('\n'), 'utf8'));
      parts = [];
      size = 0;
    }
    parts.push(line);
    size += line.length + 1;
  }
  if (parts.length > 0) out.push(Buffer.from(parts.join('\n'), 'utf8'));
  return out;
}

/** Line heads without the index, by body, route and primary: built once, not per item. */
const heads: Record<'e' | 'm' | 's' | 'r' | 'h', Record<RouteKind, [string, string]>> = { e: headsOf('e'), m: headsOf('m'), s: headsOf('s'), r: headsOf('r'), h: headsOf('h') };

function headsOf(body: string): Record<RouteKind, [string, string]> {
  const of = (k: RouteKind): [string, string] => [body + kindToTag[k] + '0', body + kindToTag[k] + '1'];
  return { account: of('account'), ip: of('ip'), host: of('host') };
}

/** An item's wire line from its body's JSON, as encodeItems writes it: e(vent), m(essage), s(ubmission), r(ecipients settled) or h(and-off). */
export function routedLine(body: 'e' | 'm' | 's' | 'r' | 'h', route: RoutedItem['route'], primary: boolean, n: number | undefined, json: string): string {
  const head = heads[body][route.kind][primary ? 1 : 0];
  return (n !== undefined ? head + n : head) + '\t' + JSON.stringify(route.key) + '\t' + json;
}

function encodeItem(it: RoutedItem): string {
  const obj = it.event ?? it.message ?? it.submission ?? it.settled;
  if (obj !== undefined) {
    const body = it.event !== undefined ? 'e' : it.message !== undefined ? 'm' : it.submission !== undefined ? 's' : 'r';
    return routedLine(body, it.route, it.primary, it.n, it.json ?? JSON.stringify(obj));
  }
  return routedLine('h', it.route, it.primary, it.n, JSON.stringify({ d: it.handOff?.detector, x: it.handOff?.data }));
}

/**
 * The requests a transaction's records go in. kafkajs puts all of one
 * request's records for a partition in ONE record batch, and the broker
 * refuses a batch over its message.max.bytes (1 MiB by default) — checked
 * after compression, so a parse batch of a few thousand lines made the
 * events of one partition too big and the parse stage crash-looped on it (a
 * backlog after an outage does that in production). Each request gets at
 * most `maxBytesPerPartition` of record values per partition, counted
 * uncompressed so the bound holds with compression off too; a partition's
 * records keep their order across the requests (sent one after another).
 * A record without a partition goes where the producer's partitioner puts
 * it: counted as one partition per topic (right for single-partition topics).
 */
export function requestsWithin<T extends { topic: string; partition?: number; value: Buffer }>(records: readonly T[], maxBytesPerPartition = 768 * 1024): T[][] {
  const requests: T[][] = [];
  // Per topic-partition: the request being filled and the bytes in it.
  const at = new Map<string, { req: number; bytes: number }>();
  for (const r of records) {
    const key = `${r.partition ?? -1}/${r.topic}`;
    let slot = at.get(key);
    if (slot === undefined) at.set(key, (slot = { req: 0, bytes: 0 }));
    else if (slot.bytes > 0 && slot.bytes + r.value.length > maxBytesPerPartition) {
      slot.req++;
      slot.bytes = 0;
    }
    slot.bytes += r.value.length;
    (requests[slot.req] ??= []).push(r);
  }
  return requests;
}

const tagKinds: Record<string, RouteKind | undefined> = tagToKind;

/** Decodes what encodeItems wrote (either version); a line that is not an item is passed to `bad` and skipped. */
export function decodeItems(buf: Buffer, bad: (reason: string, line: string) => void): RoutedItem[] {
  const out: RoutedItem[] = [];
  if (buf.length === 0) return out;
  for (const line of linesOf(buf)) {
    if (line.charCodeAt(0) !== 123 /* { */) {
      const it = decodeLine(line);
      if (typeof it === 'string') bad(it, line);
      else out.push(it);
      continue;
    }
    let w: WireItem;
    try {
      w = JSON.parse(line) as WireItem;
    } catch {
      bad('not JSON', line);
      continue;
    }
    const kind = w && typeof w === 'object' ? tagToKind[w.r] : undefined;
    const bodies = (w?.e !== undefined ? 1 : 0) + (w?.m !== undefined ? 1 : 0) + (w?.h !== undefined ? 1 : 0);
    if (kind === undefined || typeof w.k !== 'string' || (w.n !== undefined && typeof w.n !== 'number') || bodies !== 1 || (w.h !== undefined && typeof w.h.d !== 'string')) {
      bad('not a routed item', line);
      continue;
    }
    const it: RoutedItem = { route: { kind, key: w.k }, primary: w.p === 1 };
    if (w.n !== undefined) it.n = w.n;
    if (w.e) it.event = w.e;
    else if (w.m) it.message = w.m;
    else if (w.h) it.handOff = { detector: w.h.d, data: w.h.x };
    out.push(it);
  }
  return out;
}

/** One line of the current version, or why it is not one. */
function decodeLine(line: string): RoutedItem | string {
  const t1 = line.indexOf('\t');
  const t2 = t1 < 0 ? -1 : line.indexOf('\t', t1 + 1);
  const body = line.charAt(0);
  const kind = tagKinds[line.charAt(1)];
  const primary = line.charAt(2);
  if (t2 < 0 || t1 < 3 || kind === undefined || (primary !== '0' && primary !== '1') || (body !== 'e' && body !== 'm' && body !== 's' && body !== 'r' && body !== 'h')) return 'not a routed item';
  let n: number | undefined;
  if (t1 > 3) {
    n = Number(line.slice(3, t1));
    if (!Number.isSafeInteger(n)) return 'not a routed item';
  }
  let key: unknown;
  let value: unknown;
  const json = line.slice(t2 + 1);
  try {
    // A key without escapes is the text between its quotes (most are): no parse needed.
    const bs = line.indexOf('\\', t1);
    const plain = t2 - t1 >= 3 && line.charCodeAt(t1 + 1) === 34 && line.charCodeAt(t2 - 1) === 34 && (bs < 0 || bs > t2);
    key = plain ? line.slice(t1 + 2, t2 - 1) : JSON.parse(line.slice(t1 + 1, t2));
    value = JSON.parse(json);
  } catch {
    return 'not JSON';
  }
  if (typeof key !== 'string' || value === null || typeof value !== 'object') return 'not a routed item';
  const it: RoutedItem = { route: { kind, key }, primary: primary === '1' };
  if (n !== undefined) it.n = n;
  if (body === 'e') {
    it.event = value as Event;
    it.json = json;
  } else if (body === 'm') {
    it.message = value as Message;
    it.json = json;
  } else if (body === 's') {
    it.submission = value as Message;
    it.json = json;
  } else if (body === 'r') {
    it.settled = value as Message;
    it.json = json;
  } else {
    const h = value as { d?: unknown; x?: unknown };
    if (typeof h.d !== 'string') return 'not a routed item';
    it.handOff = { detector: h.d, data: h.x };
  }
  return it;
}
