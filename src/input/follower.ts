/**
 * Follows one log file like `tail -F`: delivers complete lines with their byte
 * offset, in batches, each with a durable position that says exactly where to
 * resume once the caller has committed that batch. Memory stays bounded: one
 * read chunk, at most one partial line of `maxLineBytes`, one batch.
 *
 * Polling (fstat of the open descriptor + stat of the path + positional reads)
 * is the source of truth; an `fs.watch` on the directory only shortens the
 * wait between polls, since it is unreliable on some filesystems.
 *
 * Rotation:
 * - rename (logrotate `create`): when the path names another inode that is
 *   not empty, the old descriptor is first read to its end (lines written to it
 *   after the rename are kept), a trailing line without newline in it is
 *   delivered (nothing will complete it), then the new file is read from byte 0.
 *   While the path is missing, or names a new file still empty (logrotate
 *   creates it before the postrotate HUP makes the writer reopen), the old
 *   descriptor keeps being read and nothing is reported. Lines a writer still
 *   appends to the old file after the new one has bytes and we switched are
 *   lost, as with `tail -F`.
 * - copytruncate: the same inode shorter than what we read, or its first bytes
 *   changed (truncated then regrown past our offset before a poll saw it):
 *   reading restarts at 0. Unavoidably lost: whatever was appended to the old
 *   content after our last read and before the truncate (it lives only in the
 *   copy, which we never see while running), plus a partial line we held.
 *
 * Resume (`startAt`): the file at the path is the same one when its head
 * fingerprint matches (or, with no fingerprint, its dev/ino); then reading
 * resumes at the offset (at 0 if the file is now shorter: truncated while we
 * were down). Otherwise the rotated predecessor (`path.1`, `path-YYYYMMDD[HH]`,
 * Postfix's `path.YYYYMMDD-HHMMSS`, or any of them gzipped while we were
 * down) with that fingerprint is finished from the offset first, then the new
 * file is read from 0 — this also recovers a copytruncate that happened while
 * down, since the copy keeps the fingerprint. If neither is found, the new file is
 * read from 0 and `onRotate` reports `resume-lost`.
 */
import { watch, type FSWatcher } from 'node:fs';
import { open, readdir, stat, type FileHandle } from 'node:fs/promises';
import { inflatedHeadHash, openInflated } from './gzip-predecessor.js';
import { createHash } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { InputError } from './line-reader.js';

/** Where to resume reading: the file (dev/ino + head fingerprint) and the byte after the last line handed out. */
export interface FollowPosition {
  dev: number;
  ino: number;
  /** Byte offset right after the last complete line delivered (or skipped as oversized). */
  offset: number;
  /** File size seen when the position was taken (informational). */
  size?: number;
  /** Fingerprint of the file's first bytes, `<n>:<sha1 hex>` (opaque; absent for an empty file). */
  head?: string;
}

export interface FollowLine {
  line: string;
  offset: number;
}

export interface RotateInfo {
  /**
   * rename: the path now names another file (old one finished, new read from 0);
   * truncate: the file shrank or was rewritten in place (copytruncate), read from 0;
   * resume-rotated: on start, the file of `startAt` was found rotated at `from` and is finished first;
   * resume-lost: on start, the file of `startAt` was not found; the file at the path is read from 0.
   */
  kind: 'rename' | 'truncate' | 'resume-rotated' | 'resume-lost';
  /** The path followed. */
  path: string;
  /** The file now being read (differs from `path` for resume-rotated). */
  from: string;
  /** Where the previous file was left. */
  previous: FollowPosition;
}

export interface FollowStats {
  linesDelivered: number;
  bytesRead: number;
  rotations: number;
  truncations: number;
  oversized: number;
}

export interface FollowerOptions {
  /** Awaited before anything more is read; commit `position` atomically with the batch's results. */
  onLines(batch: FollowLine[], position: FollowPosition): void | Promise<void>;
  /** Resume here (a position given to onLines earlier). */
  startAt?: FollowPosition;
  /** Without startAt: read the existing file from byte 0 (default) or start at its end (false). */
  fromStart?: boolean;
  /** Poll interval, ms. Default 250. */
  pollMs?: number;
  /** Lines longer than this (bytes, without the newline) are skipped and counted. Default 64 KiB. */
  maxLineBytes?: number;
  /** Most lines handed to one onLines call. Default 5000. */
  maxBatchLines?: number;
  /** Read size, bytes. Default 256 KiB. */
  chunkBytes?: number;
  /** Use fs.watch on the directory to notice changes before the next poll. Default true. */
  watch?: boolean;
  onRotate?(info: RotateInfo): void;
  /** Read errors (reported once until they change) and onLines failures (the batch is retried). */
  onError?(err: Error): void;
}

interface Opened {
  fh: FileHandle;
  path: string;
  dev: number;
  ino: number;
  size: number;
  head: string | undefined;
}

const HEAD_BYTES = 256;
const MAX_RETRY_MS = 5000;

function sha1(buf: Buffer): string {
  return createHash('sha1').update(buf).digest('hex');
}

function parseHead(head: string | undefined): { n: number; hex: string } | null {
  if (!head) return null;
  const m = /^(\d{1,3}):([0-9a-f]{40})$/.exec(head);
  if (!m) return null;
  const n = Number(m[1]);
  return n > 0 && n <= HEAD_BYTES ? { n, hex: m[2]! } : null;
}

/** Hash of the first `n` bytes, or null if the file has fewer. */
async function hashFirst(fh: FileHandle, n: number): Promise<string | null> {
  const buf = Buffer.alloc(n);
  let got = 0;
  while (got < n) {
    const { bytesRead } = await fh.read(buf, got, n - got, got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got === n ? sha1(buf) : null;
}

async function computeHead(fh: FileHandle, size: number): Promise<string | undefined> {
  const n = Math.min(size, HEAD_BYTES);
  if (n === 0) return undefined;
  const h = await hashFirst(fh, n);
  return h === null ? undefined : `${n}:${h}`;
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

function unreadable(path: string, err: unknown): InputError {
  const e = err as NodeJS.ErrnoException;
  const why = e.code === 'EACCES' ? 'permission denied' : e.code === 'EISDIR' ? 'is a directory' : e.message;
  return new InputError('FG_INPUT_UNREADABLE', `cannot follow ${path}: ${why}`, { cause: err });
}

/** Open a regular file; null when it does not exist. */
async function tryOpen(path: string): Promise<Opened | null> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    if (isMissing(err)) return null;
    throw unreadable(path, err);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw Object.assign(new Error('not a regular file'), { code: st.isDirectory() ? 'EISDIR' : 'EINVAL' });
    return { fh, path, dev: st.dev, ino: st.ino, size: st.size, head: await computeHead(fh, st.size) };
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw unreadable(path, err);
  }
}

export class Follower {
  private readonly path: string;
  private readonly onLines: FollowerOptions['onLines'];
  private readonly onRotate: (info: RotateInfo) => void;
  private readonly onError: (err: Error) => void;
  private readonly pollMs: number;
  private readonly maxLine: number;
  private readonly maxBatch: number;
  private readonly useWatch: boolean;
  private readonly buf: Buffer;
  private readonly startAt: FollowPosition | undefined;
  private readonly fromStart: boolean;

  private file: Opened | null = null;
  private readOffset = 0; // next byte to read from the open file
  private consumed = 0; // byte after the last complete line (delivered or skipped)
  private carry: Buffer | null = null; // partial line read so far
  private carryOffset = 0;
  private skipping = false; // inside an oversized line, dropping bytes until '\n'
  private batch: FollowLine[] = [];
  private pos: FollowPosition = { dev: 0, ino: 0, offset: 0 };

  private startPending = true;
  private running = false; // start() was called (once per instance)
  private stopping = false;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private kickTimer: NodeJS.Timeout | null = null;
  private watcher: FSWatcher | null = null;
  private lastError: string | null = null;
  private readonly counters: FollowStats = { linesDelivered: 0, bytesRead: 0, rotations: 0, truncations: 0, oversized: 0 };

  constructor(path: string, opts: FollowerOptions) {
    this.path = path;
    this.onLines = opts.onLines;
    this.onRotate = opts.onRotate ?? (() => undefined);
    this.onError = opts.onError ?? ((e) => process.stderr.write(`floodgate: ${e.message}\n`));
    this.pollMs = Math.max(1, opts.pollMs ?? 250);
    this.maxLine = opts.maxLineBytes ?? 64 * 1024;
    this.maxBatch = Math.max(1, opts.maxBatchLines ?? 5000);
    this.useWatch = opts.watch ?? true;
    this.buf = Buffer.alloc(Math.max(4096, opts.chunkBytes ?? 256 * 1024));
    this.startAt = opts.startAt;
    this.fromStart = opts.fromStart ?? true;
    if (this.startAt) this.pos = { ...this.startAt };
  }

  /** Resolve where to start (fast: opens, stats, fingerprints), then follow in the background. */
  async start(): Promise<void> {
    if (this.running) throw new Error('Follower already started (make a new one with startAt: position())');
    this.running = true;
    let ready!: () => void;
    const isReady = new Promise<void>((resolve) => (ready = resolve));
    this.loop = (async () => {
      try {
        await this.resolveStart();
      } catch (err) {
        this.report(err); // retried by the loop
      }
      ready();
      if (this.useWatch && !this.stopping) this.startWatch();
      await this.run();
    })();
    await isReady;
  }

  /**
   * Stop polling; an onLines call in progress is awaited. Lines read but not
   * yet handed out are not delivered, and position() excludes them.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.loop;
  }

  /** Position after the last batch delivered (or the start position). */
  position(): FollowPosition {
    return { ...this.pos };
  }

  stats(): FollowStats {
    return { ...this.counters };
  }

  // ---- loop ----

  private async run(): Promise<void> {
    try {
      while (!this.stopping) {
        try {
          await this.cycle();
          this.lastError = null;
        } catch (err) {
          this.report(err);
        }
        if (this.stopping) break;
        await this.sleep(this.pollMs);
      }
    } finally {
      this.watcher?.close();
      this.watcher = null;
      if (this.kickTimer) clearTimeout(this.kickTimer);
      const f = this.file;
      this.file = null;
      await f?.fh.close().catch(() => undefined);
    }
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        if (this.wake === done) this.wake = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }

  private startWatch(): void {
    const base = basename(this.path);
    try {
      this.watcher = watch(dirname(this.path), { persistent: false }, (_ev, name) => {
        if (name === null || String(name).startsWith(base)) this.kick();
      });
      this.watcher.on('error', () => {
        this.watcher?.close();
        this.watcher = null; // polling carries on alone
      });
    } catch {
      this.watcher = null;
    }
  }

  /** A watch event: wake the poll soon, coalescing bursts of writes. */
  private kick(): void {
    if (this.kickTimer || !this.wake) return;
    this.kickTimer = setTimeout(() => {
      this.kickTimer = null;
      this.wake?.();
    }, Math.min(this.pollMs, 10));
  }

  private report(err: unknown): void {
    const e = err instanceof Error ? err : new Error(String(err));
    const key = `${(e as NodeJS.ErrnoException).code ?? ''}:${e.message}`;
    if (key === this.lastError) return;
    this.lastError = key;
    try {
      this.onError(e);
    } catch {
      // a failing error handler must not stop the follower
    }
  }

  private rotated(info: Omit<RotateInfo, 'path'>): void {
    try {
      this.onRotate({ path: this.path, ...info });
    } catch (err) {
      this.report(err);
    }
  }

  // ---- one poll ----

  private async cycle(): Promise<void> {
    if (this.startPending) {
      await this.resolveStart();
      if (this.stopping) return;
    }
    if (!this.file) {
      const opened = await tryOpen(this.path);
      if (!opened) return; // missing: keep polling quietly
      this.attach(opened, 0);
    }
    const file = this.file!;
    const st = await file.fh.stat();
    if (st.size < this.readOffset || (await this.headChanged(file, st.size))) {
      if (!(await this.flush())) return;
      await this.truncated(file, st.size);
    } else {
      file.size = st.size;
    }
    if (!(await this.drain())) return;

    let pst;
    try {
      pst = await stat(this.path);
    } catch (err) {
      if (isMissing(err)) return; // renamed away, new one not created yet: keep reading the old descriptor
      throw unreadable(this.path, err);
    }
    if (pst.dev === file.dev && pst.ino === file.ino) return;
    // logrotate `create` makes the new file before the postrotate HUP: until the
    // writer has reopened (the new file has bytes), it may still append to the old one.
    if (pst.size === 0) return;

    // Rotated by rename: finish the old file, then switch.
    if (!(await this.drain())) return;
    this.finishPartial();
    if (!(await this.flush())) return;
    const next = await tryOpen(this.path);
    if (!next) return; // gone again: keep the old descriptor, retry next poll
    const previous = this.snapshot();
    this.file = null;
    await file.fh.close().catch(() => undefined);
    this.attach(next, 0);
    this.counters.rotations++;
    this.rotated({ kind: 'rename', from: this.path, previous });
    await this.drain();
  }

  /** Read to the current end of the open file, delivering full batches; false if stopped. */
  private async drain(): Promise<boolean> {
    const file = this.file!;
    while (!this.stopping) {
      const { bytesRead } = await file.fh.read(this.buf, 0, this.buf.length, this.readOffset);
      if (bytesRead === 0) break;
      const at = this.readOffset;
      this.readOffset += bytesRead;
      this.counters.bytesRead += bytesRead;
      if (this.readOffset > file.size) file.size = this.readOffset;
      if ((parseHead(file.head)?.n ?? 0) < Math.min(file.size, HEAD_BYTES)) file.head = await computeHead(file.fh, file.size);
      if (!(await this.consume(this.buf.subarray(0, bytesRead), at))) return false;
    }
    if (this.stopping) return false;
    return this.flush();
  }

  /** Split a chunk at `at` into lines; false if stopped while a full batch was handed out. */
  private async consume(chunk: Buffer, at: number): Promise<boolean> {
    let start = 0;
    if (this.skipping) {
      const nl = chunk.indexOf(10);
      if (nl < 0) return true;
      this.skipping = false;
      start = nl + 1;
      this.consumed = at + start;
    } else if (this.carry !== null) {
      const nl = chunk.indexOf(10);
      if (nl < 0) {
        if (this.carry.length + chunk.length > this.maxLine + 1) {
          this.counters.oversized++;
          this.carry = null;
          this.skipping = true;
        } else {
          this.carry = Buffer.concat([this.carry, chunk]);
        }
        return true;
      }
      const line = Buffer.concat([this.carry, chunk.subarray(0, nl)]);
      this.carry = null;
      this.emit(line, 0, line.length, this.carryOffset);
      start = nl + 1;
      this.consumed = at + start;
      if (this.batch.length >= this.maxBatch && !(await this.flush())) return false;
    }
    let nl = chunk.indexOf(10, start);
    while (nl >= 0) {
      this.emit(chunk, start, nl, at + start);
      start = nl + 1;
      this.consumed = at + start;
      if (this.batch.length >= this.maxBatch && !(await this.flush())) return false;
      nl = chunk.indexOf(10, start);
    }
    if (start < chunk.length) {
      if (chunk.length - start > this.maxLine + 1) {
        this.counters.oversized++;
        this.skipping = true;
      } else {
        this.carry = Buffer.from(chunk.subarray(start)); // copy: the read buffer is reused
        this.carryOffset = at + start;
      }
    }
    return true;
  }

  private emit(buf: Buffer, start: number, end: number, offset: number): void {
    let e = end;
    if (e > start && buf[e - 1] === 13) e--; // CRLF
    if (e - start > this.maxLine) {
      this.counters.oversized++;
      return;
    }
    this.batch.push({ line: buf.toString('utf8', start, e), offset });
  }

  /** The file is left for good: its trailing line without newline will never be completed, deliver it. */
  private finishPartial(): void {
    if (this.carry !== null) {
      this.emit(this.carry, 0, this.carry.length, this.carryOffset);
      this.carry = null;
    }
    this.skipping = false;
    this.consumed = this.readOffset;
  }

  /** Hand the pending batch out (retrying while onLines fails); false if stopped before it was accepted. */
  private async flush(): Promise<boolean> {
    if (this.batch.length === 0) {
      this.pos = this.snapshot(); // only skipped lines (or nothing) since: still a safe place to resume
      return true;
    }
    const batch = this.batch;
    this.batch = [];
    const pos = this.snapshot();
    let delay = this.pollMs;
    for (;;) {
      try {
        await this.onLines(batch, pos);
        break;
      } catch (err) {
        this.report(err);
        if (this.stopping) return false;
        await this.sleep(delay);
        if (this.stopping) return false;
        delay = Math.min(delay * 2, MAX_RETRY_MS);
      }
    }
    this.pos = pos;
    this.counters.linesDelivered += batch.length;
    return !this.stopping;
  }

  private snapshot(): FollowPosition {
    const f = this.file;
    if (!f) return { ...this.pos };
    const p: FollowPosition = { dev: f.dev, ino: f.ino, offset: this.consumed, size: Math.max(f.size, this.readOffset) };
    if (f.head !== undefined) p.head = f.head;
    return p;
  }

  private attach(opened: Opened, offset: number): void {
    this.file = opened;
    this.readOffset = offset;
    this.consumed = offset;
    this.carry = null;
    this.skipping = false;
    this.batch = [];
    this.pos = this.snapshot();
  }

  /** Same inode, first bytes no longer what we fingerprinted: rewritten in place (copytruncate + regrowth). */
  private async headChanged(file: Opened, size: number): Promise<boolean> {
    const h = parseHead(file.head);
    if (!h) return false;
    const now = await hashFirst(file.fh, h.n);
    if (now !== h.hex) return true;
    if (h.n < HEAD_BYTES && size > h.n) file.head = await computeHead(file.fh, size);
    return false;
  }

  private async truncated(file: Opened, size: number): Promise<void> {
    const previous = this.snapshot();
    file.size = size;
    file.head = await computeHead(file.fh, size);
    this.attach(file, 0);
    this.counters.truncations++;
    this.rotated({ kind: 'truncate', from: this.path, previous });
  }

  // ---- where to start ----

  private async resolveStart(): Promise<void> {
    const at = this.startAt;
    if (!at) {
      const cur = await tryOpen(this.path);
      if (cur) {
        if (this.fromStart) this.attach(cur, 0);
        else await this.attachAtEnd(cur);
      }
      this.startPending = false;
      return;
    }

    const found: { o: Opened; score: number; isPath: boolean }[] = [];
    try {
      const cur = await tryOpen(this.path);
      if (cur) found.push({ o: cur, score: await this.identity(cur, at), isPath: true });
      for (const p of await this.predecessors()) {
        let o: Opened | null = null;
        try {
          o = await tryOpen(p);
        } catch {
          continue; // an unreadable old file is not worth an error here
        }
        if (!o) continue;
        const score = await this.identity(o, at);
        if (score > 0 && o.size >= at.offset) found.push({ o, score, isPath: false });
        else await o.fh.close().catch(() => undefined);
      }
      // Compressed while we were down: tried only when no plain file will do.
      if (!found.some((f) => f.score > 0 && f.o.size >= at.offset)) {
        const gz = await this.compressedPredecessor(at);
        if (gz) found.push({ o: gz, score: 1, isPath: false });
      }
    } catch (err) {
      for (const f of found) await f.o.fh.close().catch(() => undefined);
      throw err;
    }

    const fits = (f: (typeof found)[number]) => (f.o.size >= at.offset ? 1 : 0);
    const ranked = found
      .filter((f) => f.score > 0)
      .sort((a, b) => fits(b) - fits(a) || b.score - a.score || Number(b.isPath) - Number(a.isPath));
    const best = ranked[0];
    const pathEntry = found.find((f) => f.isPath);
    for (const f of found) if (f !== best && f !== pathEntry) await f.o.fh.close().catch(() => undefined);

    if (best?.isPath) {
      if (best.o.size >= at.offset) {
        this.attach(best.o, at.offset);
      } else {
        this.attach(best.o, 0);
        this.counters.truncations++;
        this.rotated({ kind: 'truncate', from: this.path, previous: at });
      }
    } else if (best) {
      if (pathEntry) await pathEntry.o.fh.close().catch(() => undefined); // reopened when the predecessor is finished
      this.attach(best.o, at.offset);
      this.rotated({ kind: 'resume-rotated', from: best.o.path, previous: at });
    } else {
      if (pathEntry) this.attach(pathEntry.o, 0);
      this.rotated({ kind: 'resume-lost', from: this.path, previous: at });
    }
    this.startPending = false;
  }

  /** 2: fingerprint and inode match; 1: fingerprint only (or inode, without a fingerprint); 0: another file. */
  private async identity(o: Opened, at: FollowPosition): Promise<number> {
    const sameIno = o.dev === at.dev && o.ino === at.ino;
    const h = parseHead(at.head);
    if (!h) return sameIno ? 1 : 0;
    if ((await hashFirst(o.fh, h.n)) !== h.hex) return 0;
    return sameIno ? 2 : 1;
  }

  /**
   * Where the previous file went: logrotate's `path.1`, then `path-YYYYMMDD[HH]`,
   * then Postfix's `postfix logrotate` (maillog_file) `path.YYYYMMDD-HHMMSS`,
   * each kind newest first; with `gz`, the same names compressed.
   */
  private async predecessors(gz = false): Promise<string[]> {
    const ext = gz ? '.gz' : '';
    const out = [`${this.path}.1${ext}`];
    const dir = dirname(this.path);
    const base = basename(this.path);
    const named = (sep: string, stamp: RegExp, names: string[]) =>
      names
        .filter((n) => n.startsWith(base + sep) && n.endsWith(ext) && stamp.test(n.slice(base.length + 1, n.length - ext.length)))
        .sort()
        .reverse()
        .map((n) => join(dir, n));
    try {
      const names = await readdir(dir);
      out.push(...named('-', /^\d{8}(\d{2})?$/, names), ...named('.', /^\d{8}-\d{6}$/, names));
    } catch {
      // directory unreadable: `.1` only
    }
    return out;
  }

  /** The newest compressed predecessor whose content has the stored head, inflated (see gzip-predecessor.ts). */
  private async compressedPredecessor(at: FollowPosition): Promise<Opened | null> {
    const h = parseHead(at.head);
    if (!h) return null; // without a fingerprint a compressed file cannot be recognised
    for (const p of await this.predecessors(true)) {
      if ((await inflatedHeadHash(p, h.n)) !== h.hex) continue;
      let fh: FileHandle;
      try {
        fh = await openInflated(p);
      } catch {
        continue; // corrupt or unreadable: not worth an error here
      }
      const st = await fh.stat();
      if (st.size >= at.offset) return { fh, path: p, dev: st.dev, ino: st.ino, size: st.size, head: at.head };
      await fh.close().catch(() => undefined);
    }
    return null;
  }

  /** fromStart false: begin after the last complete line, so the line being written is delivered whole. */
  private async attachAtEnd(o: Opened): Promise<void> {
    const w = Math.min(o.size, this.maxLine + 2);
    const tail = Buffer.alloc(w);
    const { bytesRead } = await o.fh.read(tail, 0, w, o.size - w);
    const nl = tail.subarray(0, bytesRead).lastIndexOf(10);
    if (nl >= 0) {
      this.attach(o, o.size - w + nl + 1);
    } else if (w === o.size) {
      this.attach(o, 0);
    } else {
      // a line already longer than the limit is being written: skip to its end
      this.attach(o, o.size);
      this.readOffset = o.size;
      this.consumed = o.size;
      this.counters.oversized++;
      this.skipping = true;
    }
  }
}
