/**
 * /metrics and /health for `floodgate ship` and `floodgate detect` (each
 * worker is scraped on its own). node:http is enough: two read-only routes,
 * no auth (they carry counters only, never an account or an IP), loopback
 * by default. Every scrape also shows how long the process's event loop
 * was held since the last one (EventLoopDelay).
 */
import { createServer, type Server } from 'node:http';
import { renderMetrics, type MetricFamily } from '../api/metrics.js';
import { EventLoopDelay } from './event-loop-delay.js';

export interface MetricsServer {
  address: string;
  close(): Promise<void>;
}

export async function serveMetrics(host: string, port: number, metrics: () => MetricFamily[], health: () => Promise<{ ok: boolean } & Record<string, unknown>>): Promise<MetricsServer> {
  const loop = new EventLoopDelay();
  const server: Server = createServer((req, res) => {
    void (async () => {
      try {
        if (req.method === 'GET' && req.url === '/metrics') {
          res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
          res.end(renderMetrics([...metrics(), ...loop.take()]));
        } else if (req.method === 'GET' && req.url === '/health') {
          const h = await health();
          res.writeHead(h.ok ? 200 : 503, { 'content-type': 'application/json' });
          res.end(JSON.stringify(h));
        } else {
          res.writeHead(404, { 'content-type': 'application/json' });
          res.end('{"error":"not found"}');
        }
      } catch (e) {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: (e as Error).message }));
      }
    })();
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
  } catch (e) {
    loop.stop();
    throw e;
  }
  const a = server.address();
  const address = typeof a === 'object' && a ? `${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}` : String(a);
  return {
    address,
    close: () =>
      new Promise<void>((r) => {
        loop.stop();
        server.close(() => r());
      }),
  };
}

export function counter(name: string, help: string, value: number, labels?: Record<string, string>): MetricFamily {
  return { name, help, type: 'counter', samples: [{ value, ...(labels ? { labels } : {}) }] };
}

export function gauge(name: string, help: string, value: number, labels?: Record<string, string>): MetricFamily {
  return { name, help, type: 'gauge', samples: [{ value, ...(labels ? { labels } : {}) }] };
}
