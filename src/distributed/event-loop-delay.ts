/**
 * How long this process's event loop was held, for /metrics: a worker's
 * parse and detect stages, its ClickHouse sink and its Kafka clients share
 * one loop, so a batch or a checkpoint that holds it delays every finding
 * behind it. Node's own sampler (perf_hooks.monitorEventLoopDelay) records
 * the time between firings of a `resolutionMs` timer, so an idle loop reads
 * about resolutionMs: that is taken off, leaving how late the timer fired.
 * Each take() reports the delays since the one before (as prom-client's
 * event-loop collector does), so a scrape shows the last interval, not the
 * process's whole life.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { MetricFamily } from '../api/metrics.js';

const NAME = 'floodgate_event_loop_delay_seconds';

export class EventLoopDelay {
  private readonly h: IntervalHistogram;
  private readonly resolutionNs: number;

  constructor(resolutionMs = 10) {
    this.resolutionNs = resolutionMs * 1e6;
    this.h = monitorEventLoopDelay({ resolution: resolutionMs });
    this.h.enable();
  }

  /** p50, p99 and max of the delays since the last call, in seconds (0 when none was sampled), then starts over. */
  take(): MetricFamily[] {
    const h = this.h;
    const s = (ns: number) => (h.count > 0 ? Math.max(0, ns - this.resolutionNs) / 1e9 : 0);
    const family: MetricFamily = {
      name: NAME,
      help: 'How late the event loop ran a timer since the last scrape: everything the process does waits this long (p50, p99, max)',
      type: 'gauge',
      samples: [
        { labels: { stat: 'p50' }, value: s(h.percentile(50)) },
        { labels: { stat: 'p99' }, value: s(h.percentile(99)) },
        { labels: { stat: 'max' }, value: s(h.max) },
      ],
    };
    h.reset();
    return [family];
  }

  stop(): void {
    this.h.disable();
  }
}
