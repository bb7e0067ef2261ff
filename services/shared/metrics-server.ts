import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { ConfigError } from './errors.js';
import type { Logger } from './log.js';

/** Prefix of every metric name this project exposes. */
export const METRIC_PREFIX = 'ensemble_stream_';

/** Default /metrics ports, one per service so that they can share a host (README, "Metrics"). */
export const METRICS_PORTS = { evaluator: 9464, aggregator: 9465, worker: 9466, dashboard: 9460 } as const;

export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Serves GET /metrics of `registry` on `port` (0: any free port, logged). */
export async function serveMetrics(registry: Registry, port: number, host: string, logger: Logger): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    registry.metrics().then(
      (body) => res.writeHead(200, { 'Content-Type': registry.contentType }).end(body),
      () => res.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // Scrapes must never keep a stopping process alive.
  server.unref();
  const bound = (server.address() as AddressInfo).port;
  logger.info('metrics endpoint', { url: `http://${host}:${bound}/metrics` });
  return {
    port: bound,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // A scraper's keep-alive connection would otherwise hold the server open.
      server.closeAllConnections();
      await closed;
    },
  };
}

/** ES_METRICS_PORT (0: any free port; `off`: none) and ES_METRICS_HOST, read once at the edge. */
export function readMetricsEndpoint(env: NodeJS.ProcessEnv, defaultPort: number): { port: number; host: string } | undefined {
  const raw = env.ES_METRICS_PORT?.trim();
  if (raw === 'off') return undefined;
  const port = raw === undefined || raw === '' ? defaultPort : Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new ConfigError(`ES_METRICS_PORT: "${raw}" is not a TCP port (or "off")`);
  return { port, host: env.ES_METRICS_HOST?.trim() || '0.0.0.0' };
}
