/** A one-line progress indicator on a TTY (and nothing at all when stderr is a pipe or a file). */
import type { WriteStream } from 'node:tty';

export class Progress {
  private last = 0;
  private shown = false;
  private readonly enabled: boolean;

  constructor(private readonly err: NodeJS.WriteStream | WriteStream) {
    this.enabled = Boolean(err.isTTY) && process.env.CI === undefined;
  }

  update(file: string, bytes: number, total: number): void {
    if (!this.enabled) return;
    const now = performance.now();
    if (now - this.last < 250) return;
    this.last = now;
    const mb = (bytes / 1048576).toFixed(0);
    const pct = total > 0 && bytes <= total ? ` ${((bytes / total) * 100).toFixed(0)}%` : '';
    this.err.write(`\r\x1b[K${file}: ${mb} MB${pct}`);
    this.shown = true;
  }

  clear(): void {
    if (this.shown) this.err.write('\r\x1b[K');
    this.shown = false;
  }
}
