import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EnsembleError, describeError } from '../shared/errors.js';
import type { ServedModel } from './served-model.js';

export type { ServedModel } from './served-model.js';

export interface V2ServerOptions {
  models: ReadonlyMap<string, ServedModel>;
  /** @defaultValue 0 (any free port) */
  port?: number;
  /** @defaultValue '127.0.0.1' */
  host?: string;
  /** Larger request bodies are refused with 413. @defaultValue 1 MiB */
  maxRequestBytes?: number;
}

export interface V2ServerStats {
  /** Inference requests received, whatever became of them. */
  inferRequests: number;
  /** TCP connections accepted (shows whether clients reuse them). */
  connections: number;
}

export interface V2Server {
  /** e.g. `http://127.0.0.1:40123` */
  readonly url: string;
  readonly stats: Readonly<V2ServerStats>;
  /** Stops listening and drops every connection, hanging requests included; idempotent. */
  close(): Promise<void>;
}

/** An HTTP error answered as `{"error": message}`. */
class HttpError extends EnsembleError {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message, { code: `HTTP_${status}` });
  }
}

const NUMERIC_DATATYPES = new Set(['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64']);

/**
 * A small model server speaking the Open Inference Protocol (KServe V2) over REST: health, model
 * metadata, model readiness and inference for the models given, one input tensor `[rows, features]`
 * in and one output tensor `[rows, outputs]` out. It lets a built-in model run as a remote service.
 */
export async function startV2Server(options: V2ServerOptions): Promise<V2Server> {
  const stats: V2ServerStats = { inferRequests: 0, connections: 0 };
  const closing = new AbortController();
  const router = new V2Router(options.models, options.maxRequestBytes ?? 1_048_576, stats);

  const server = createServer((req, res) => {
    router.route(req, res).catch((error: unknown) => {
      if (closing.signal.aborted) return;
      if (error instanceof HttpError) {
        for (const [header, value] of Object.entries(error.headers)) res.setHeader(header, value);
        send(res, error.status, { error: error.message });
      } else {
        send(res, 500, { error: describeError(error) });
      }
    });
  });
  server.on('connection', () => stats.connections++);
  await listen(server, options.port ?? 0, options.host ?? '127.0.0.1');
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  let closed: Promise<void> | undefined;

  return {
    url: `http://${host}:${address.port}`,
    stats,
    close() {
      closed ??= new Promise<void>((resolve, reject) => {
        closing.abort();
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      });
      return closed;
    },
  };
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Answers one request, or throws the HttpError to answer with. */
class V2Router {
  constructor(
    private readonly models: ReadonlyMap<string, ServedModel>,
    private readonly maxRequestBytes: number,
    private readonly stats: V2ServerStats,
  ) {}

  async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const parts = path
      .split('/')
      .filter((p) => p !== '')
      .map(decodePart);
    if (parts[0] !== 'v2') throw new HttpError(404, `no endpoint ${path}`);
    if (parts[1] === 'health' && parts.length === 3 && (parts[2] === 'live' || parts[2] === 'ready')) {
      expectMethod(req, 'GET');
      return send(res, 200, parts[2] === 'live' ? { live: true } : { ready: true });
    }
    if (parts[1] !== 'models' || parts[2] === undefined) throw new HttpError(404, `no endpoint ${path}`);
    return this.routeModel(req, res, path, parts[2], parts.slice(3));
  }

  /** `/v2/models/<name>[/versions/<version>]/...`; `rest` is what follows the name. */
  private async routeModel(req: IncomingMessage, res: ServerResponse, path: string, name: string, rest: string[]): Promise<void> {
    const model = this.models.get(name);
    if (model === undefined) throw new HttpError(404, `no model "${name}"`);
    if (rest[0] === 'versions') {
      const version = rest[1];
      if (version !== model.version) throw new HttpError(404, `model "${name}" has no version "${version ?? ''}"`);
      rest = rest.slice(2);
    }
    if (rest.length === 0) {
      expectMethod(req, 'GET');
      return send(res, 200, metadata(name, model));
    }
    if (rest.length === 1 && rest[0] === 'ready') {
      expectMethod(req, 'GET');
      return send(res, 200, { name, ready: true });
    }
    if (rest.length === 1 && rest[0] === 'infer') return this.infer(req, res, name, model);
    throw new HttpError(404, `no endpoint ${path}`);
  }

  private async infer(req: IncomingMessage, res: ServerResponse, name: string, model: ServedModel): Promise<void> {
    expectMethod(req, 'POST');
    this.stats.inferRequests++;
    const body = await readJson(req, this.maxRequestBytes);
    return send(res, 200, infer(name, model, body));
  }
}

function metadata(name: string, model: ServedModel) {
  return {
    name,
    versions: [model.version],
    platform: 'ensemble-stream',
    inputs: [{ name: 'input-0', datatype: 'FP64', shape: [-1, model.featureCount] }],
    outputs: [{ name: 'output-0', datatype: 'FP64', shape: [-1, model.outputCount ?? -1] }],
  };
}

/** Runs one inference request: a single tensor of shape `[rows, features]` (or `[features]`). */
function infer(name: string, model: ServedModel, body: unknown) {
  if (!isRecord(body) || !Array.isArray(body.inputs)) throw new HttpError(400, 'request must be an object with an "inputs" array');
  if (body.inputs.length !== 1) throw new HttpError(400, `model "${name}" takes exactly one input tensor, got ${body.inputs.length}`);
  const input: unknown = body.inputs[0];
  if (!isRecord(input)) throw new HttpError(400, 'input tensor must be an object');
  if (typeof input.datatype !== 'string' || !NUMERIC_DATATYPES.has(input.datatype)) {
    throw new HttpError(400, `input datatype ${JSON.stringify(input.datatype)} is not numeric`);
  }
  const shape = input.shape;
  if (!Array.isArray(shape) || shape.length < 1 || shape.length > 2 || !shape.every((d) => Number.isInteger(d) && d > 0)) {
    throw new HttpError(400, `input shape ${JSON.stringify(shape)} is not [rows, features] or [features]`);
  }
  const [rows, width] = (shape.length === 2 ? shape : [1, shape[0]]) as [number, number];
  if (width !== model.featureCount) throw new HttpError(400, `model "${name}" takes ${model.featureCount} features, got ${width}`);
  if (!Array.isArray(input.data)) throw new HttpError(400, 'input data must be an array');
  const data: unknown[] = input.data.flat(Infinity);
  if (data.length !== rows * width) throw new HttpError(400, `input data holds ${data.length} values, shape ${JSON.stringify(shape)} needs ${rows * width}`);
  if (!data.every((v) => typeof v === 'number' && Number.isFinite(v))) throw new HttpError(400, 'input data must be finite numbers');
  const values = data as number[];

  const answers = Array.from({ length: rows }, (_, r) => model.predict(values.slice(r * width, (r + 1) * width)));
  const outputWidth = answers[0]?.length ?? 0;
  if (answers.some((a) => a.length !== outputWidth)) throw new Error(`model "${name}" answered rows of different lengths`);
  return {
    model_name: name,
    model_version: model.version,
    ...(typeof body.id === 'string' ? { id: body.id } : {}),
    outputs: [{ name: 'output-0', datatype: 'FP64', shape: [rows, outputWidth], data: answers.flat() }],
  };
}

async function readJson(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const text = await new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxBytes) return void chunks.push(chunk);
      // Stop reading and close after the 413 rather than drain an unbounded body.
      req.off('data', onData);
      req.pause();
      reject(new HttpError(413, `request body larger than ${maxBytes} bytes`, { connection: 'close' }));
    };
    req.on('data', onData);
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, 'request body is not valid JSON');
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function expectMethod(req: IncomingMessage, method: 'GET' | 'POST'): void {
  if (req.method !== method) throw new HttpError(405, `${req.method ?? '?'} not allowed here, use ${method}`, { allow: method });
}

function decodePart(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new HttpError(400, `malformed path segment ${JSON.stringify(part)}`);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
