/**
 * Byte strings held outside the JS heap, by handle: one growable buffer and
 * two typed columns (offset, length) per handle, instead of one heap string
 * per text.
 *
 * Why off the heap: V8 lets the old generation grow to a few times its live
 * size between full collections, so a megabyte of long-lived heap strings
 * costs several megabytes of peak RSS; bytes in an ArrayBuffer cost one.
 * Freed bytes are reclaimed by compaction when the buffer is full and at
 * least half of it is garbage (copying the live texts is O(live bytes),
 * amortised over as many bytes of writes).
 */
const MIN_BYTES = 64 * 1024;

export class TextArena {
  private bytes = new Uint8Array(MIN_BYTES);
  /** next free byte */
  private end = 0;
  /** bytes held by live handles */
  private live = 0;
  private off = new Int32Array(64);
  /** per handle: its length, or -1 when free */
  private len = new Int32Array(64).fill(-1);
  private readonly freeHandles: number[] = [];
  private handles = 0;

  /** Texts held. */
  get size(): number {
    return this.handles - this.freeHandles.length;
  }

  /** Bytes held by live texts (not counting garbage awaiting compaction). */
  get liveBytes(): number {
    return this.live;
  }

  /** Keep a copy of data; returns its handle. */
  put(data: Uint8Array): number {
    const h = this.reserve(data.length);
    this.bytes.set(data, this.off[h]!);
    return h;
  }

  /**
   * Keep the characters of s as one byte each, when every one is below
   * U+0100 (names, addresses, IPs); returns its handle, or -1 (nothing kept)
   * when s has other characters.
   */
  putLatin1(s: string): number {
    const n = s.length;
    for (let i = 0; i < n; i++) if (s.charCodeAt(i) > 255) return -1;
    const h = this.reserve(n);
    const b = this.bytes;
    const at = this.off[h]!;
    for (let i = 0; i < n; i++) b[at + i] = s.charCodeAt(i);
    return h;
  }

  /** Whether handle h (from putLatin1) holds exactly the characters of s. */
  equalsLatin1(h: number, s: string): boolean {
    const n = this.len[h]!;
    if (n !== s.length) return false;
    const b = this.bytes;
    const at = this.off[h]!;
    for (let i = 0; i < n; i++) if (b[at + i] !== s.charCodeAt(i)) return false;
    return true;
  }

  /** The string that putLatin1 kept as handle h (a new string each call). */
  latin1(h: number): string {
    const n = this.len[h]!;
    if (n < 0) throw new Error(`TextArena: handle ${h} is free`);
    return Buffer.from(this.bytes.buffer, this.bytes.byteOffset + this.off[h]!, n).toString('latin1');
  }

  /** A handle for n bytes at the end, making room first; the caller writes them. */
  private reserve(n: number): number {
    if (this.end + n > this.bytes.length) this.makeRoom(n);
    const h = this.newHandle();
    this.off[h] = this.end;
    this.len[h] = n;
    this.end += n;
    this.live += n;
    return h;
  }

  /** The bytes of handle h: a view, valid until the next put. */
  get(h: number): Uint8Array {
    const n = this.len[h]!;
    if (n < 0) throw new Error(`TextArena: handle ${h} is free`);
    return this.bytes.subarray(this.off[h]!, this.off[h]! + n);
  }

  free(h: number): void {
    const n = this.len[h]!;
    if (n < 0) throw new Error(`TextArena: handle ${h} freed twice`);
    this.live -= n;
    this.len[h] = -1;
    this.freeHandles.push(h);
    if (this.size === 0) this.end = 0; // nothing live: start over at the front
  }

  private newHandle(): number {
    const reused = this.freeHandles.pop();
    if (reused !== undefined) return reused;
    if (this.handles === this.off.length) {
      const off = new Int32Array(this.handles * 2);
      off.set(this.off);
      const len = new Int32Array(this.handles * 2).fill(-1);
      len.set(this.len);
      this.off = off;
      this.len = len;
    }
    return this.handles++;
  }

  /** Room for n more bytes: compact into a buffer twice the live size (never below MIN_BYTES). */
  private makeRoom(n: number): void {
    const need = this.live + n;
    const cap = Math.max(MIN_BYTES, this.bytes.length, 2 * need);
    // mostly garbage: compact in a buffer of the same size; else grow
    const next = need * 2 <= this.bytes.length ? this.bytes.length : cap;
    const to = new Uint8Array(next);
    let at = 0;
    for (let h = 0; h < this.handles; h++) {
      const len = this.len[h]!;
      if (len < 0) continue;
      to.set(this.bytes.subarray(this.off[h]!, this.off[h]! + len), at);
      this.off[h] = at;
      at += len;
    }
    this.bytes = to;
    this.end = at;
  }
}
