/**
 * Time slices for long synchronous loops that share an event loop: a
 * detect worker's stages, its ClickHouse sink, its hand-offs, its /metrics
 * and Kafka heartbeats all wait while one Kafka batch is processed. A batch
 * of a megabyte or more (a backlog) took seconds here, and every finding of
 * those seconds waited for the end of it to be stored.
 */
export class Slices {
  private start = performance.now();
  /** Turns given to the event loop so far. */
  yields = 0;

  constructor(private readonly sliceMs: number) {}

  /** When this slice is used up: give the event loop a turn, then start the next slice. */
  async maybeYield(): Promise<void> {
    if (performance.now() - this.start < this.sliceMs) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.yields++;
    this.start = performance.now();
  }
}
