import { createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { type ServedModel, startV2Server } from '../../services/model-server/v2-server.js';

/**
 * Failures to show to a remote runner, for its retry and breaker tests. They apply to inference
 * requests only, except `notReady`, which also answers the readiness endpoints.
 */
export interface V2Faults {
  /** Accept inference requests and never answer them. */
  hang?: boolean;
  /** HTTP status of injected failures (500 when only `failFirst` is set). */
  failWith?: number;
  /** Fail only the next N inference requests, then answer normally (default: every one while `failWith` is set). */
  failFirst?: number;
  /** Wait this long before answering an inference request, ms. */
  delayMs?: number;
  /** Report the server and every model as not ready; inference answers 503. */
  notReady?: boolean;
}

export interface FaultyV2Server {
  readonly url: string;
  readonly stats: Readonly<{ inferRequests: number; connections: number }>;
  /** The JSON bodies of the inference requests received, in order. */
  readonly inferBodies: readonly unknown[];
  /** Replaces the faults (and restarts the `failFirst` count); `{}` heals it. */
  setFaults(faults: V2Faults): void;
  close(): Promise<void>;
}

/**
 * The real V2 model server behind a proxy that injects failures: the production server stays free of
 * test switches, and the runner meets the same HTTP it would meet from a failing remote model.
 */
export async function startFaultyV2Server(models: ReadonlyMap<string, ServedModel>, initial: V2Faults = {}): Promise<FaultyV2Server> {
  const backend = await startV2Server({ models });
  const target = new URL(backend.url);
  const stats = { inferRequests: 0, connections: 0 };
  const inferBodies: unknown[] = [];
  const closing = new AbortController();
  let faults: V2Faults = {};
  let failuresLeft = 0;
  const setFaults = (next: V2Faults) => {
    faults = { ...next };
    failuresLeft = next.failFirst ?? 0;
  };
  setFaults(initial);
  const injectFailure = (): boolean => {
    if (faults.failFirst === undefined) return faults.failWith !== undefined;
    if (failuresLeft <= 0) return false;
    failuresLeft--;
    return true;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const body = Buffer.concat(await req.toArray());
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const infer = path.endsWith('/infer');
    if (infer) {
      stats.inferRequests++;
      inferBodies.push(safeJson(body));
      if (faults.hang) return; // left open until the client gives up or close()
      if (faults.delayMs !== undefined && faults.delayMs > 0) await sleep(faults.delayMs, undefined, { signal: closing.signal });
      if (faults.notReady) return answer(res, 503, { error: 'model is not ready' });
      if (injectFailure()) return answer(res, faults.failWith ?? 500, { error: 'injected failure' });
    } else if (faults.notReady && path.endsWith('/ready')) {
      const model = /^\/v2\/models\/([^/]+)\//.exec(path)?.[1];
      return answer(res, 400, model === undefined ? { ready: false } : { name: decodeURIComponent(model), ready: false });
    }
    forward(req, body, res);
  };
  const forward = (req: IncomingMessage, body: Buffer, res: ServerResponse) => {
    const upstream = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    upstream.end(body);
  };
  const proxy = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  proxy.on('connection', () => stats.connections++);
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  let closed: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    stats,
    inferBodies,
    setFaults,
    close() {
      closed ??= (async () => {
        closing.abort();
        const stopped = new Promise<void>((resolve) => proxy.close(() => resolve()));
        proxy.closeAllConnections();
        await stopped;
        await backend.close();
      })();
      return closed;
    },
  };
}

function answer(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function safeJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return body.toString('utf8');
  }
}
