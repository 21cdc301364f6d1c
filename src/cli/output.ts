/**
 * Buffered JSON-lines writer for stdout: batches writes (one syscall per
 * ~64 KiB instead of per line), honours backpressure, and treats a closed
 * pipe (`floodgate parse ... | head`) as a normal end, not a crash.
 */
import type { Writable } from 'node:stream';

export class JsonLinesWriter {
  private buf: string[] = [];
  private size = 0;
  private pending: Promise<void> | null = null;
  closed = false;

  constructor(private readonly out: Writable) {
    out.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') this.closed = true;
      else throw err;
    });
  }

  write(obj: unknown): void {
    if (this.closed) return;
    const s = JSON.stringify(obj);
    this.buf.push(s);
    this.size += s.length + 1;
    if (this.size >= 65536) this.flushSync();
  }

  private flushSync(): void {
    if (this.buf.length === 0 || this.closed) return;
    const chunk = this.buf.join('\n') + '\n';
    this.buf = [];
    this.size = 0;
    if (!this.out.write(chunk) && this.pending === null) {
      this.pending = new Promise((resolve) => this.out.once('drain', () => {
        this.pending = null;
        resolve();
      }));
    }
  }

  /** Await this between input chunks so a slow reader slows the parser instead of growing memory. */
  async drained(): Promise<void> {
    if (this.pending) await this.pending;
  }

  async end(): Promise<void> {
    this.flushSync();
    await this.drained();
  }
}
