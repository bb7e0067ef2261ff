import http from 'node:http';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigError, EnsembleError, ModelError } from '../shared/errors.js';
import type { ModelAnswer, ModelRunner } from './model-runner.js';

export interface RemoteRunnerOptions {
  /** Root of the V2 server, e.g. `http://models:8080`; http or https, may carry a path prefix. */
  baseUrl: string;
  /** The model's name on the server. */
  model: string;
  /** The id this ensemble knows the model by. @defaultValue `model` */
  modelId?: string;
  /**
   * Version to pin: every call then goes to `/versions/{version}`. Pin it when the server holds
   * several. @defaultValue the server's default version, reported as the first its metadata lists
   */
  version?: string;
  /** @defaultValue 'classification' */
  task?: 'classification' | 'regression';
  /** Probabilities per answer. @defaultValue the last dimension of the model's first output in its metadata */
  classCount?: number;
  /** Limit of one HTTP attempt, response body included, ms. @defaultValue 300 */
  attemptTimeoutMs?: number;
  /** Attempts per prediction, the first included. @defaultValue 3 */
  maxAttempts?: number;
  /**
   * Time for all attempts and pauses of one prediction, ms. Keep it below the worker breaker's
   * `timeout`, so the breaker sees this runner's typed error rather than its own timeout while an
   * attempt is still in flight. @defaultValue 900 (the breaker's default timeout is 1000)
   */
  totalBudgetMs?: number;
  /** Upper bound of the first retry's pause (full jitter); it doubles per retry. @defaultValue 20 */
  backoffBaseMs?: number;
  /** Largest pause between attempts, ms. @defaultValue 200 */
  backoffMaxMs?: number;
  /** Limit of each readiness and metadata request at `open()`, ms. @defaultValue 5000 */
  openTimeoutMs?: number;
  /** Connections kept open to the server (the worker runs up to 64 calls at once). @defaultValue 64 */
  maxSockets?: number;
  /** Larger responses are refused as malformed. @defaultValue 1 MiB */
  maxResponseBytes?: number;
  /** Sent with every request, e.g. `authorization`. @defaultValue none */
  headers?: Readonly<Record<string, string>>;
}

type Settings = Required<Omit<RemoteRunnerOptions, 'modelId' | 'version' | 'classCount'>> &
  Pick<RemoteRunnerOptions, 'version' | 'classCount'> & { modelId: string };

interface Opened {
  modelVersion: string;
  featureCount: number | undefined;
  inputName: string;
  answerLength: number;
}

interface Reply {
  status: number;
  text: string;
}

/** Probabilities must sum to 1 within this. */
const SUM_TOLERANCE = 1e-6;
/** An attempt with less time left than this cannot succeed over a network; give up instead. */
const MIN_ATTEMPT_MS = 10;

/**
 * Calls a model served over the Open Inference Protocol (KServe V2) REST API. `open()` checks the
 * model is ready and reads its metadata (version, feature count, input name, class count); each
 * prediction is one `infer` call, retried with jittered exponential backoff when the failure is
 * transient (connection errors, timeouts, 408, 429, 5xx) and while the total budget lasts. Answers
 * are validated; a malformed one is a non-retriable `BAD_MODEL_RESPONSE`.
 */
export class RemoteRunner implements ModelRunner {
  readonly modelId: string;
  readonly modelVersion: string;
  readonly featureCount: number | undefined;

  private constructor(
    private readonly s: Settings,
    private readonly client: JsonClient,
    private readonly opened: Opened,
  ) {
    this.modelId = s.modelId;
    this.modelVersion = opened.modelVersion;
    this.featureCount = opened.featureCount;
  }

  /**
   * Connects to the model, failing fast (no retries) with `MODEL_NOT_FOUND` (non-retriable),
   * `MODEL_NOT_READY` or `MODEL_UNREACHABLE` (retriable: try again later), or a `ConfigError` when
   * the options contradict the model's metadata.
   */
  static async open(options: RemoteRunnerOptions): Promise<RemoteRunner> {
    const s = settingsOf(options);
    const client = new JsonClient(s);
    try {
      const ready = await client.send('GET', `${client.modelPath}/ready`, undefined, s.openTimeoutMs);
      if (ready.status === 404) {
        throw new ModelError(`${client.label}: no such model${s.version === undefined ? '' : ' version'} (HTTP 404)`, {
          code: 'MODEL_NOT_FOUND',
          retriable: false,
        });
      }
      if (!isSuccess(ready.status) || (jsonOrUndefined(ready.text) as { ready?: unknown } | undefined)?.ready === false) {
        throw new ModelError(`${client.label}: model is not ready (HTTP ${ready.status})`, { code: 'MODEL_NOT_READY' });
      }
      const reply = await client.send('GET', client.modelPath, undefined, s.openTimeoutMs);
      if (!isSuccess(reply.status)) throw statusError(client.label, reply);
      return new RemoteRunner(s, client, readMetadata(s, client.label, reply.text));
    } catch (error) {
      client.destroy();
      throw error;
    }
  }

  /** `requestId` travels as the V2 request `id`, so server logs can be matched to requests. */
  async predict(features: readonly number[], requestId?: string): Promise<ModelAnswer> {
    const { s, client } = this;
    const body = JSON.stringify({
      ...(requestId === undefined ? {} : { id: requestId }),
      inputs: [{ name: this.opened.inputName, shape: [1, features.length], datatype: 'FP64', data: features }],
    });
    const deadline = performance.now() + s.totalBudgetMs;
    for (let attempt = 1; ; attempt++) {
      try {
        const timeout = Math.min(s.attemptTimeoutMs, deadline - performance.now());
        return this.answer(await client.send('POST', `${client.modelPath}/infer`, body, timeout));
      } catch (error) {
        if (!(error instanceof EnsembleError) || !error.retriable) throw error;
        if (attempt >= s.maxAttempts) throw gaveUp(error, attempt, 'no attempts left');
        const pause = Math.random() * Math.min(s.backoffMaxMs, s.backoffBaseMs * 2 ** (attempt - 1));
        if (deadline - performance.now() - pause < MIN_ATTEMPT_MS) throw gaveUp(error, attempt, `${s.totalBudgetMs} ms budget spent`);
        await client.pause(pause);
      }
    }
  }

  /** Aborts calls in flight and closes every connection. */
  async close(): Promise<void> {
    this.client.destroy();
  }

  private answer(reply: Reply): ModelAnswer {
    const { label } = this.client;
    if (!isSuccess(reply.status)) throw statusError(label, reply);
    const bad = (why: string) => new ModelError(`${label}: bad response: ${why}`, { code: 'BAD_MODEL_RESPONSE', retriable: false });
    const body = jsonOrUndefined(reply.text);
    if (!isRecord(body) || !Array.isArray(body.outputs) || !isRecord(body.outputs[0])) throw bad('no "outputs" tensor');
    const output = body.outputs[0];
    if (!Array.isArray(output.data)) throw bad('output has no "data" array');
    const data: unknown[] = output.data.flat(Infinity);
    if (!data.every((v): v is number => typeof v === 'number' && Number.isFinite(v))) throw bad('output data holds values that are not finite numbers');
    const values = data as number[];
    if (Array.isArray(output.shape) && output.shape.reduce((n: number, d: unknown) => n * Number(d), 1) !== values.length) {
      throw bad(`output shape ${JSON.stringify(output.shape)} does not match its ${values.length} values`);
    }
    if (values.length !== this.opened.answerLength) throw bad(`expected ${this.opened.answerLength} values, got ${values.length}`);
    if (this.s.task === 'regression') return { value: values[0] as number };
    if (values.some((p) => p < 0)) throw bad('negative probability');
    const sum = values.reduce((a, b) => a + b, 0);
    if (Math.abs(sum - 1) > SUM_TOLERANCE) throw bad(`probabilities sum to ${sum}, not 1`);
    return { probabilities: values };
  }
}

/** JSON over HTTP with pooled keep-alive connections; every failure comes out as a typed error. */
class JsonClient {
  readonly label: string;
  readonly modelPath: string;
  private readonly base: URL;
  private readonly transport: typeof http | typeof https;
  private readonly agent: http.Agent;
  private readonly closing = new AbortController();
  /** Requests in flight, for `destroy()` (a long-lived signal combined per request would leak). */
  private readonly inFlight = new Set<http.ClientRequest>();

  constructor(private readonly s: Settings) {
    this.base = new URL(s.baseUrl);
    this.label = `model ${s.modelId} at ${this.base.origin}`;
    const prefix = this.base.pathname.replace(/\/+$/, '');
    const version = s.version === undefined ? '' : `/versions/${encodeURIComponent(s.version)}`;
    this.modelPath = `${prefix}/v2/models/${encodeURIComponent(s.model)}${version}`;
    this.transport = this.base.protocol === 'https:' ? https : http;
    this.agent = new this.transport.Agent({ keepAlive: true, maxSockets: s.maxSockets });
  }

  /** Sends one request. A reused connection the server just closed fails retriably, like any reset. */
  send(method: 'GET' | 'POST', path: string, body: string | undefined, timeoutMs: number): Promise<Reply> {
    if (this.closing.signal.aborted) return Promise.reject(this.closedError());
    const timeout = AbortSignal.timeout(Math.max(1, Math.floor(timeoutMs)));
    const url = new URL(path, this.base.origin);
    const headers: Record<string, string> = { ...this.s.headers, accept: 'application/json' };
    if (body !== undefined) Object.assign(headers, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
    return new Promise<Reply>((resolve, reject) => {
      let settled = false;
      const settle = (error: EnsembleError | undefined, reply?: Reply) => {
        if (settled) return;
        settled = true;
        this.inFlight.delete(req);
        if (error === undefined) resolve(reply as Reply);
        else reject(error);
      };
      const transportError = (cause: unknown): EnsembleError => {
        if (this.closing.signal.aborted) return this.closedError();
        if (timeout.aborted)
          return new ModelError(`${this.label}: ${method} ${url.pathname} timed out after ${Math.round(timeoutMs)} ms`, { code: 'MODEL_TIMEOUT', cause });
        const detail = (cause as { code?: string }).code ?? (cause instanceof Error ? cause.message : String(cause));
        return new ModelError(`${this.label}: ${method} ${url.pathname} failed: ${detail}`, { code: 'MODEL_UNREACHABLE', cause });
      };
      const req = this.transport.request(url, { method, agent: this.agent, headers, signal: timeout }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size <= this.s.maxResponseBytes) return void chunks.push(chunk);
          settle(new ModelError(`${this.label}: bad response: larger than ${this.s.maxResponseBytes} bytes`, { code: 'BAD_MODEL_RESPONSE', retriable: false }));
          req.destroy();
        });
        res.on('end', () => settle(undefined, { status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', (error) => settle(transportError(error)));
        res.on('close', () => {
          if (!res.complete) settle(transportError(new Error('response cut short')));
        });
      });
      req.on('error', (error) => settle(transportError(error)));
      this.inFlight.add(req);
      req.end(body);
    });
  }

  /** Waits between attempts; `destroy()` cuts the wait short. */
  async pause(ms: number): Promise<void> {
    try {
      await sleep(ms, undefined, { signal: this.closing.signal });
    } catch {
      throw this.closedError();
    }
  }

  destroy(): void {
    this.closing.abort();
    for (const req of this.inFlight) req.destroy();
    this.agent.destroy();
  }

  private closedError(): ModelError {
    return new ModelError(`${this.label}: runner is closed`, { code: 'RUNNER_CLOSED', retriable: false });
  }
}

function settingsOf(o: RemoteRunnerOptions): Settings {
  let base: URL;
  try {
    base = new URL(o.baseUrl);
  } catch (error) {
    throw new ConfigError(`remote model baseUrl ${JSON.stringify(o.baseUrl)} is not a URL`, error);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new ConfigError(`remote model baseUrl ${o.baseUrl} is not http(s)`);
  if (o.model === '') throw new ConfigError('remote model name is empty');
  const s: Settings = {
    baseUrl: o.baseUrl,
    model: o.model,
    modelId: o.modelId ?? o.model,
    version: o.version,
    task: o.task ?? 'classification',
    classCount: o.classCount,
    attemptTimeoutMs: o.attemptTimeoutMs ?? 300,
    maxAttempts: o.maxAttempts ?? 3,
    totalBudgetMs: o.totalBudgetMs ?? 900,
    backoffBaseMs: o.backoffBaseMs ?? 20,
    backoffMaxMs: o.backoffMaxMs ?? 200,
    openTimeoutMs: o.openTimeoutMs ?? 5000,
    maxSockets: o.maxSockets ?? 64,
    maxResponseBytes: o.maxResponseBytes ?? 1_048_576,
    headers: o.headers ?? {},
  };
  const positive = ['attemptTimeoutMs', 'totalBudgetMs', 'openTimeoutMs', 'maxResponseBytes'] as const;
  for (const key of positive) {
    if (!(s[key] > 0 && Number.isFinite(s[key]))) throw new ConfigError(`remote model ${key} must be a positive number, got ${s[key]}`);
  }
  for (const key of ['backoffBaseMs', 'backoffMaxMs'] as const) {
    if (!(s[key] >= 0 && Number.isFinite(s[key]))) throw new ConfigError(`remote model ${key} must be >= 0, got ${s[key]}`);
  }
  for (const key of ['maxAttempts', 'maxSockets'] as const) {
    if (!Number.isInteger(s[key]) || s[key] < 1) throw new ConfigError(`remote model ${key} must be a positive integer, got ${s[key]}`);
  }
  if (s.classCount !== undefined && (!Number.isInteger(s.classCount) || s.classCount < 2)) {
    throw new ConfigError(`remote model classCount must be an integer >= 2, got ${s.classCount}`);
  }
  return s;
}

/** Reads what the runner needs from a V2 model metadata response. */
function readMetadata(s: Settings, label: string, text: string): Opened {
  const meta = jsonOrUndefined(text);
  if (!isRecord(meta)) throw new ModelError(`${label}: model metadata is not a JSON object`, { code: 'BAD_MODEL_RESPONSE', retriable: false });
  const versions = Array.isArray(meta.versions) ? meta.versions.filter((v): v is string => typeof v === 'string') : [];
  const input = Array.isArray(meta.inputs) && isRecord(meta.inputs[0]) ? meta.inputs[0] : {};
  const output = Array.isArray(meta.outputs) && isRecord(meta.outputs[0]) ? meta.outputs[0] : {};
  const featureCount = lastDimension(input.shape);
  const advertised = lastDimension(output.shape);

  let answerLength: number;
  if (s.task === 'regression') {
    if (advertised !== undefined && advertised !== 1)
      throw new ConfigError(`${label}: a regression model must answer 1 value, its metadata says ${advertised}`);
    answerLength = 1;
  } else {
    if (s.classCount !== undefined && advertised !== undefined && s.classCount !== advertised) {
      throw new ConfigError(`${label}: classCount is ${s.classCount}, the model's metadata says ${advertised}`);
    }
    const classes = s.classCount ?? advertised;
    if (classes === undefined) throw new ConfigError(`${label}: the model's metadata does not say how many classes it answers; set classCount`);
    answerLength = classes;
  }
  return {
    // Servers may omit versions; predictions still need one to name.
    modelVersion: s.version ?? versions[0] ?? 'unversioned',
    featureCount,
    inputName: typeof input.name === 'string' && input.name !== '' ? input.name : 'input-0',
    answerLength,
  };
}

/** The last dimension of a tensor shape, if fixed (V2 marks variable dimensions with -1). */
function lastDimension(shape: unknown): number | undefined {
  if (!Array.isArray(shape)) return undefined;
  const last: unknown = shape[shape.length - 1];
  return typeof last === 'number' && Number.isInteger(last) && last > 0 ? last : undefined;
}

/** 408, 429 and 5xx are worth another attempt; any other refusal will be refused again. */
function statusError(label: string, reply: Reply): ModelError {
  const retriable = reply.status === 408 || reply.status === 429 || reply.status >= 500;
  const body = jsonOrUndefined(reply.text);
  const detail = isRecord(body) && typeof body.error === 'string' ? `: ${body.error.slice(0, 200)}` : '';
  return new ModelError(`${label}: HTTP ${reply.status}${detail}`, { code: retriable ? 'MODEL_UNAVAILABLE' : 'MODEL_REJECTED', retriable });
}

function gaveUp(last: EnsembleError, attempts: number, why: string): ModelError {
  return new ModelError(`${last.message} (gave up after ${attempts} attempt${attempts === 1 ? '' : 's'}: ${why})`, {
    code: last.code,
    retriable: true,
    cause: last,
  });
}

function isSuccess(status: number): boolean {
  return status >= 200 && status < 300;
}

function jsonOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
