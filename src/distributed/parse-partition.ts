/**
 * The parse stage's state for one partition of the lines topic: envelope
 * contexts per source file, the correlator (a partition holds whole hosts,
 * so a message's lines are all here) and, per source, the next byte offset
 * expected, so a batch the shipper sends twice (crash between the broker's
 * ack and its state file) is counted once. Pure: no Kafka, no clock.
 *
 * Output order per event matches the standalone pipeline: the messages that
 * pushing an event into the correlator completes come before the event.
 */
import type { Event } from '../core/events.js';
import { Correlator, type CorrelatorSnapshot } from '../correlator/correlator.js';
import type { Message } from '../correlator/message.js';
import type { EnvelopeContext } from '../envelope/envelope.js';
import { YearInferrer } from '../envelope/year.js';
import type { ZoneClock } from '../envelope/zone.js';
import { LineParser } from '../pipeline/line-parser.js';
import { emptyStats, type ParseStats } from '../pipeline/stats.js';
import { routesOf } from '../detect/route.js';
import { EVENT_COLUMNS, eventTsvLine, messageRowWithJson, type MessageRow } from '../clickhouse/rows.js';
import { TsvRows } from '../clickhouse/tsv.js';
import { routedLine, type LineChunk, type RoutedItem } from './wire.js';

const emptyRows = (): ParsedRows => ({ events: new TsvRows(EVENT_COLUMNS, 16 * 1024), messages: [] });

/** Sources remembered for duplicate suppression; old rotated files fall out first. */
const MAX_SOURCES = 4096;

export interface ParsePartitionOptions {
  zone: ZoneClock;
  idleTimeoutMs: number;
  maxEntries: number;
  /**
   * The partition stores what it parses: every event and message becomes a
   * row (takeRows), the items it routes are none of them the stored copy
   * (primary false), and an event `reads` refuses (no detector and no site
   * knowledge reads it: see detectionReads) is stored but not routed.
   * Without it every item is routed and its first route is the stored copy.
   */
  stores?: { reads: (e: Event) => boolean };
  /** Route submissions (see Correlator's onSubmission): whether an enabled detector reads them. Default true. */
  submissions?: boolean;
  /** Route settled recipients (see Correlator's onSettled): whether an enabled detector reads them. Default true. */
  settled?: boolean;
  /** See CorrelatorOptions.heldAfterMs. */
  heldAfterMs?: number;
}

/** Rows of what a partition that stores parsed since the last takeRows(). */
export interface ParsedRows {
  /** Event rows, encoded at once (see TsvRows). */
  events: TsvRows;
  messages: MessageRow[];
}

export interface ParsePartitionSnapshot {
  v: 1;
  correlator: CorrelatorSnapshot;
  /** [source, next offset, year state] in least-recently-used order. */
  sources: [string, number, { year: number; lastMonth: number } | null][];
  stats: ParseStats;
  duplicates: number;
}

interface SourceState {
  next: number;
  ctx: EnvelopeContext | undefined;
  /** Year inference state restored from a snapshot, applied when the context is rebuilt. */
  year?: { year: number; lastMonth: number };
}

export interface Malformed {
  file: string;
  offset: number;
  line: string;
  /** Why it is set aside, when not a malformed line. */
  reason?: string;
}

export class ParsePartition {
  readonly stats: ParseStats = emptyStats();
  duplicates = 0;
  private readonly parser = new LineParser(this.stats);
  private readonly correlator: Correlator;
  private readonly sources = new Map<string, SourceState>();
  private readonly zone: ZoneClock;
  /** Events stored but not routed (see ParsePartitionOptions.stores). */
  storedOnly = 0;
  private out: RoutedItem[] = [];
  private rows: ParsedRows = emptyRows();
  private readonly reads: ((e: Event) => boolean) | undefined;
  private readonly events: Event[] = [];
  private readonly malformed: Malformed[] = [];
  /** Set during a feed that only rebuilds state (see feed). */
  private rebuilding = false;

  constructor(o: ParsePartitionOptions) {
    this.zone = o.zone;
    this.reads = o.stores?.reads;
    this.correlator = new Correlator((m) => this.route(undefined, m, undefined), {
      idleTimeoutMs: o.idleTimeoutMs,
      maxEntries: o.maxEntries,
      ...(o.heldAfterMs !== undefined ? { heldAfterMs: o.heldAfterMs } : {}),
      ...(o.submissions === false ? {} : { onSubmission: (m: Message) => this.routeDetectionOnly('s', m) }),
      ...(o.settled === false ? {} : { onSettled: (m: Message) => this.routeDetectionOnly('r', m) }),
    });
  }

  /**
   * Parse a chunk; its items accumulate until takeOutput(). With
   * `rebuildOnly` the chunk only moves the state on (open messages, source
   * offsets): it makes no items, rows or malformed samples, for records whose
   * output an earlier owner committed and stored. No serialising: several
   * times cheaper per line.
   */
  feed(chunk: LineChunk, rebuildOnly = false): void {
    this.rebuilding = rebuildOnly;
    try {
      this.parse(chunk);
    } finally {
      this.rebuilding = false;
    }
  }

  private parse(chunk: LineChunk): void {
    const src = this.source(chunk);
    const events = this.events;
    for (let i = 0; i < chunk.lines.length; i++) {
      const offset = chunk.offsets[i]!;
      if (offset < src.next) {
        this.duplicates++;
        continue;
      }
      const line = chunk.lines[i]!;
      // Offsets only grow within a source, so "after this line's start" is enough to spot a re-sent line.
      src.next = offset + 1;
      events.length = 0;
      const rec = this.parser.envelope(line, offset, src.ctx!);
      if (rec === undefined) {
        if (this.malformed.length < 20 && !this.rebuilding) this.malformed.push({ file: chunk.file, offset, line: line.slice(0, 2048) });
        continue;
      }
      this.parser.dispatchRecord(rec, events);
      for (let j = 0; j < events.length; j++) {
        const e = events[j]!;
        this.correlator.push(e);
        this.route(e, undefined, j);
      }
    }
  }

  /** Items produced since the last call, in order. */
  takeOutput(): RoutedItem[] {
    const o = this.out;
    this.out = [];
    return o;
  }

  /** Rows since the last call (none unless the partition stores). */
  takeRows(): ParsedRows {
    const r = this.rows;
    this.rows = emptyRows();
    return r;
  }

  /** Samples of malformed lines since the last call (at most 20), for the dead-letter topic. */
  takeMalformed(): Malformed[] {
    return this.malformed.splice(0, this.malformed.length);
  }

  /** End of all input (tests, replays): finish open messages. */
  flush(): void {
    this.correlator.flush();
  }

  private route(e: Event | undefined, m: Message | undefined, n: number | undefined): void {
    if (this.rebuilding) return;
    // Serialised here, once for its row and all its routes: the text stored is the text that travels.
    const json = JSON.stringify(e ?? m);
    const reads = this.reads;
    if (reads !== undefined) {
      if (e === undefined) this.rows.messages.push(messageRowWithJson(m!, json));
      else {
        this.storeEvent(e, n!, json);
        if (!reads(e)) {
          this.storedOnly++;
          return;
        }
      }
    }
    // Stored here, the item has no stored copy among its deliveries; else its first route is that copy.
    this.send(e !== undefined ? 'e' : 'm', (e ?? m)!, n, json, reads === undefined);
  }

  /**
   * A submission or a held message's settled recipients go to the detect
   * stage only, by the message's routes: never stored (the message is, when
   * it is emitted).
   */
  private routeDetectionOnly(body: 's' | 'r', m: Message): void {
    if (this.rebuilding) return;
    this.send(body, m, undefined, JSON.stringify(m), false);
  }

  /** The item's wire lines, one per route; with `firstStored`, its first route is the copy the detect stage stores. */
  private send(body: 'e' | 'm' | 's' | 'r', item: Event | Message, n: number | undefined, json: string, firstStored: boolean): void {
    const routes = routesOf(item);
    for (let i = 0; i < routes.length; i++) {
      const route = routes[i]!;
      const primary = firstStored && i === 0;
      // The wire line now, not the event: an item holds no object of the event until its transaction commits.
      const it: RoutedItem = { route, primary, line: routedLine(body, route, primary, n, json) };
      if (n !== undefined) it.n = n;
      this.out.push(it);
    }
  }

  private storeEvent(e: Event, n: number, json: string): void {
    let line: string;
    try {
      line = eventTsvLine(e, n, json);
    } catch {
      // A non-finite number (a parser bug), not the stage's end: the row is skipped and shown on the dead-letter topic.
      if (this.malformed.length < 20) this.malformed.push({ file: e.src.file, offset: e.src.offset, line: json.slice(0, 2048), reason: 'event row could not be made' });
      return;
    }
    this.rows.events.push(line);
  }

  private source(chunk: LineChunk): SourceState {
    let s = this.sources.get(chunk.source);
    if (s !== undefined) {
      // Most recently used last: eviction takes the first.
      this.sources.delete(chunk.source);
      this.sources.set(chunk.source, s);
    } else {
      s = { next: 0, ctx: undefined };
      this.sources.set(chunk.source, s);
      if (this.sources.size > MAX_SOURCES) this.sources.delete(this.sources.keys().next().value!);
    }
    if (s.ctx === undefined) {
      s.ctx = this.context(chunk, s.year);
      delete s.year;
    }
    return s;
  }

  private context(chunk: Pick<LineChunk, 'format' | 'mtime' | 'host' | 'file'>, year: { year: number; lastMonth: number } | null | undefined): EnvelopeContext {
    const years = new YearInferrer(chunk.mtime);
    if (year) years.restoreState(year);
    return { format: chunk.format, zone: this.zone, years, defaultHost: chunk.host, file: chunk.file };
  }

  snapshot(): ParsePartitionSnapshot {
    const sources: ParsePartitionSnapshot['sources'] = [];
    for (const [k, s] of this.sources) sources.push([k, s.next, s.ctx ? s.ctx.years.state() : (s.year ?? null)]);
    return { v: 1, correlator: this.correlator.snapshot(), sources, stats: structuredClone(this.stats), duplicates: this.duplicates };
  }

  /**
   * Continue from snapshot(). Envelope contexts come back with their year
   * state; their format/host/file are taken from the next chunk of the source.
   */
  restore(s: ParsePartitionSnapshot): void {
    this.correlator.restore(s.correlator);
    this.sources.clear();
    for (const [k, next, year] of s.sources) this.sources.set(k, { next, ctx: undefined, ...(year ? { year } : {}) });
    Object.assign(this.stats, s.stats);
    this.duplicates = s.duplicates;
  }
}
