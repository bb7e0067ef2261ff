import { createServer, type Server } from 'node:http';
import type { Logger } from './log.js';
import { readiness } from './readiness.js';

/**
 * `/healthz`: 200 while the process serves requests at all (a supervisor restarts it otherwise).
 * `/readyz`: 200 with the readiness report when ready, 503 with the same report when not.
 */
export async function startHealthServer(port: number, host: string, logger: Logger): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"alive":true}\n');
    } else if (path === '/readyz') {
      const report = readiness.report();
      res.writeHead(report.ready ? 200 : 503, { 'content-type': 'application/json' }).end(`${JSON.stringify(report)}\n`);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // Probes must never keep a stopping process alive.
  server.unref();
  const address = server.address();
  logger.info('health endpoints', {
    url: `http://${host}:${typeof address === 'object' && address !== null ? address.port : port}`,
    paths: ['/healthz', '/readyz'],
  });
  return server;
}
