/**
 * Sleeps that a shutdown can cut short: a retry loop waiting out an outage
 * (ClickHouse, Redis) sleeps here, and stop/close wakes every sleeper so the
 * loop sees it is stopping instead of finishing its backoff.
 */
export class Sleepers {
  private readonly waiting = new Set<() => void>();

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(t);
        this.waiting.delete(wake);
        resolve();
      };
      const t = setTimeout(wake, ms);
      this.waiting.add(wake);
    });
  }

  wakeAll(): void {
    for (const wake of [...this.waiting]) wake();
  }
}
