// /metrics of `floodgate ship` and `floodgate detect`: the process's own
// families, and how long its event loop was held since the last scrape.
import { afterEach, describe, expect, it } from 'vitest';
import { counter, serveMetrics, type MetricsServer } from '../src/distributed/metrics-server.js';

let server: MetricsServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** The samples of a scrape, by name with labels. */
async function scrape(address: string): Promise<Map<string, number>> {
  const text = await (await fetch(`http://${address}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return out;
}

const hold = (ms: number) => {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // the event loop is held, as by a long batch
  }
};

describe('metrics server', () => {
  it("shows how long the event loop was held since the previous scrape, next to the process's metrics", async () => {
    server = await serveMetrics('127.0.0.1', 0, () => [counter('floodgate_test_things_total', 'things', 3)], async () => ({ ok: true }));
    await new Promise((r) => setTimeout(r, 50));
    hold(300);
    // Timers run late after the hold: give the sampler a turn to record it.
    await new Promise((r) => setTimeout(r, 30));
    const first = await scrape(server.address);
    expect(first.get('floodgate_test_things_total')).toBe(3);
    expect(first.get('floodgate_event_loop_delay_seconds{stat="max"}')).toBeGreaterThanOrEqual(0.25);
    expect(first.get('floodgate_event_loop_delay_seconds{stat="p50"}')).toBeLessThan(first.get('floodgate_event_loop_delay_seconds{stat="max"}')!);

    // The next scrape starts over: the hold is not reported again.
    await new Promise((r) => setTimeout(r, 100));
    const second = await scrape(server.address);
    expect(second.get('floodgate_event_loop_delay_seconds{stat="max"}')).toBeLessThan(0.25);
    expect(second.get('floodgate_event_loop_delay_seconds{stat="p99"}')).toBeLessThan(0.25);
  });

  it('reads an idle loop as not late, not as the sampling interval', async () => {
    server = await serveMetrics('127.0.0.1', 0, () => [], async () => ({ ok: true }));
    await scrape(server.address);
    await new Promise((r) => setTimeout(r, 300));
    // Node records the time between the 10 ms sampler's firings: about 10 ms when nothing holds the loop.
    expect((await scrape(server.address)).get('floodgate_event_loop_delay_seconds{stat="p50"}')).toBeLessThan(0.009);
  });
});
