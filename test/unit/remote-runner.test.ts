import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ARTIFACT_SCHEMA_VERSION, type ModelArtifact, paramsVersion, saveArtifact } from '../../services/ml/artifact.js';
import { evaluateProbabilities } from '../../services/ml/metrics.js';
import { fitModel } from '../../services/ml/models/index.js';
import { createRng } from '../../services/ml/random.js';
import { servedModelFromArtifact } from '../../services/model-server/served-model.js';
import { type ServedModel, startV2Server } from '../../services/model-server/v2-server.js';
import { type FaultyV2Server as V2Server, startFaultyV2Server, type V2Faults } from '../support/faulty-v2.js';
import { ConfigError, EnsembleError, ModelError } from '../../services/shared/errors.js';
import { createKafka } from '../../services/shared/kafka.js';
import { createLogger } from '../../services/shared/log.js';
import { DEFAULT_TOPICS } from '../../services/shared/topics.js';
import { BuiltinRunner } from '../../services/worker/builtin-runner.js';
import { RemoteRunner, type RemoteRunnerOptions } from '../../services/worker/remote-runner.js';
import { type BreakerOptions, ModelWorker } from '../../services/worker/worker.js';

// Three well-separated classes in two features: a tiny model fitted once for every test.
const X = [
  [0, 0],
  [0.2, 0.1],
  [0.1, 0.3],
  [3, 3],
  [3.2, 2.9],
  [2.8, 3.1],
  [6, 0],
  [6.1, 0.2],
  [5.9, -0.1],
];
const y = Int32Array.from([0, 0, 0, 1, 1, 1, 2, 2, 2]);
const fitted = fitModel('logistic-regression', X, y, 3, createRng(7));
const PROBES = [
  [0, 0],
  [3, 3],
  [6, 0],
  [1.5, 1.5],
  [-2, 7.25],
];

const served: ServedModel = {
  version: 'v1',
  featureCount: 2,
  outputCount: 3,
  predict: (features) => Array.from(fitted.predictProba(features)),
};

const servers: { close(): Promise<void> }[] = [];
const runners: RemoteRunner[] = [];

afterEach(async () => {
  await Promise.all(runners.splice(0).map((r) => r.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function serve(models: Record<string, ServedModel> = { m: served }, faults?: V2Faults): Promise<V2Server> {
  const server = await startFaultyV2Server(new Map(Object.entries(models)), faults);
  servers.push(server);
  return server;
}

/** Opens a runner on model `m` with quick retries unless told otherwise. */
async function connect(server: V2Server, options: Partial<RemoteRunnerOptions> = {}): Promise<RemoteRunner> {
  const runner = await RemoteRunner.open({ baseUrl: server.url, model: 'm', backoffBaseMs: 5, backoffMaxMs: 20, ...options });
  runners.push(runner);
  return runner;
}

async function rejection(promise: Promise<unknown>): Promise<EnsembleError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(EnsembleError);
  return error as EnsembleError;
}

describe('RemoteRunner against a healthy V2 server', () => {
  it('learns version and feature count at open and answers what the in-process model answers', async () => {
    const server = await serve();
    const runner = await connect(server, { modelId: 'remote-lr' });
    expect(runner.modelId).toBe('remote-lr');
    expect(runner.modelVersion).toBe('v1');
    expect(runner.featureCount).toBe(2);
    for (const x of PROBES) {
      expect(await runner.predict(x, `req-${x.join('-')}`)).toEqual({ probabilities: Array.from(fitted.predictProba(x)) });
    }
    // Sequential calls share one kept-alive connection.
    expect(server.stats.inferRequests).toBe(PROBES.length);
    expect(server.stats.connections).toBe(1);
  });

  it('serves a trained artifact exactly as the built-in runner runs it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'remote-runner-'));
    try {
      const params = fitted.toJSON();
      const metrics = evaluateProbabilities(
        y,
        X.map((x) => fitted.predictProba(x)),
      );
      const artifact: ModelArtifact = {
        schemaVersion: ARTIFACT_SCHEMA_VERSION,
        modelId: 'tiny-logistic-regression',
        version: paramsVersion(params),
        family: 'logistic-regression',
        dataset: 'tiny',
        classes: ['a', 'b', 'c'],
        featureNames: ['f0', 'f1'],
        seed: 7,
        split: { fractions: { train: 1, validation: 0, test: 0 }, sizes: { train: X.length, validation: 0, test: 0 } },
        trainedAt: new Date().toISOString(),
        metrics: { validation: metrics, test: metrics },
        params,
      };
      const path = await saveArtifact(dir, artifact);
      const { name, model } = await servedModelFromArtifact(path);
      const server = await serve({ [name]: model });
      const remote = await connect(server, { model: name });
      const local = await BuiltinRunner.load(path);
      expect(remote.modelVersion).toBe(local.modelVersion);
      expect(remote.featureCount).toBe(local.featureCount);
      for (const x of PROBES) expect(await remote.predict(x)).toEqual(await local.predict(x));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('pins a version in the path and answers regression values', async () => {
    const server = await serve({ m: { version: '7', featureCount: 3, outputCount: 1, predict: (f) => [f[0]! + f[1]! * f[2]!] } });
    const runner = await connect(server, { task: 'regression', version: '7' });
    expect(runner.modelVersion).toBe('7');
    expect(await runner.predict([1, 2, 3.5])).toEqual({ value: 8 });
    const missing = await rejection(connect(server, { task: 'regression', version: '8' }));
    expect(missing.code).toBe('MODEL_NOT_FOUND');
  });
});

describe('RemoteRunner failures', () => {
  it('times out on a hanging server with a retriable error', async () => {
    const server = await serve({ m: served }, { hang: true });
    const runner = await connect(server, { attemptTimeoutMs: 200, maxAttempts: 1 });
    const started = performance.now();
    const error = await rejection(runner.predict([0, 0]));
    const elapsed = performance.now() - started;
    expect(error).toBeInstanceOf(ModelError);
    expect(error.code).toBe('MODEL_TIMEOUT');
    expect(error.retriable).toBe(true);
    expect(elapsed).toBeGreaterThanOrEqual(150);
    expect(elapsed).toBeLessThan(10_000);
  });

  it('stops retrying when the total budget is spent, long before max attempts', async () => {
    const server = await serve({ m: served }, { hang: true });
    const runner = await connect(server, { attemptTimeoutMs: 200, maxAttempts: 50, totalBudgetMs: 500 });
    const error = await rejection(runner.predict([0, 0]));
    expect(error.code).toBe('MODEL_TIMEOUT');
    expect(error.retriable).toBe(true);
    expect(error.message).toContain('budget');
    // Each attempt waits at least ~200 ms of a 500 ms budget.
    expect(server.stats.inferRequests).toBeGreaterThanOrEqual(1);
    expect(server.stats.inferRequests).toBeLessThanOrEqual(3);
  });

  it('retries 500s, then fails retriably after max attempts', async () => {
    const server = await serve({ m: served }, { failWith: 500 });
    const runner = await connect(server, { maxAttempts: 4 });
    const error = await rejection(runner.predict([0, 0]));
    expect(error.code).toBe('MODEL_UNAVAILABLE');
    expect(error.retriable).toBe(true);
    expect(error.message).toContain('injected failure');
    expect(error.message).toContain('4 attempts');
    expect(server.stats.inferRequests).toBe(4);
  });

  it.each([408, 429, 502, 503])('treats HTTP %i as retriable', async (status) => {
    const server = await serve({ m: served }, { failWith: status });
    const runner = await connect(server, { maxAttempts: 2 });
    const error = await rejection(runner.predict([0, 0]));
    expect(error.retriable).toBe(true);
    expect(server.stats.inferRequests).toBe(2);
  });

  it('succeeds when a server that failed the first calls recovers within the attempts', async () => {
    const server = await serve({ m: served }, { failWith: 503, failFirst: 2 });
    const runner = await connect(server, { maxAttempts: 3 });
    expect(await runner.predict([3, 3])).toEqual({ probabilities: Array.from(fitted.predictProba([3, 3])) });
    expect(server.stats.inferRequests).toBe(3);
  });

  it.each([400, 404, 422])('does not retry HTTP %i and reports it as non-retriable', async (status) => {
    const server = await serve({ m: served }, { failWith: status });
    const runner = await connect(server);
    const error = await rejection(runner.predict([0, 0]));
    expect(error.code).toBe('MODEL_REJECTED');
    expect(error.retriable).toBe(false);
    expect(server.stats.inferRequests).toBe(1);
  });

  it('passes on the server’s own 400 for a request it cannot take', async () => {
    const server = await serve();
    const runner = await connect(server);
    const error = await rejection(runner.predict([1, 2, 3]));
    expect(error.code).toBe('MODEL_REJECTED');
    expect(error.retriable).toBe(false);
    expect(error.message).toContain('takes 2 features, got 3');
    expect(server.stats.inferRequests).toBe(1);
  });

  it.each([
    ['too few values', [0.5, 0.5], 'expected 3 values'],
    ['too many values', [0.25, 0.25, 0.25, 0.25], 'expected 3 values'],
    ['a negative probability', [-0.5, 0.75, 0.75], 'negative'],
    ['NaN (null in JSON)', [Number.NaN, 0.5, 0.5], 'not finite'],
    ['probabilities not summing to 1', [0.5, 0.5, 0.5], 'sum to'],
  ])('rejects an answer with %s as a non-retriable BAD_MODEL_RESPONSE', async (_, answer, message) => {
    const server = await serve({ m: { version: 'bad', featureCount: 2, outputCount: 3, predict: () => answer } });
    const runner = await connect(server);
    const error = await rejection(runner.predict([0, 0]));
    expect(error).toBeInstanceOf(ModelError);
    expect(error.code).toBe('BAD_MODEL_RESPONSE');
    expect(error.retriable).toBe(false);
    expect(error.message).toContain(message);
    expect(server.stats.inferRequests).toBe(1);
  });

  it('fails fast at open when the model is not ready, missing or unreachable', async () => {
    const server = await serve({ m: served }, { notReady: true });
    const notReady = await rejection(connect(server));
    expect(notReady.code).toBe('MODEL_NOT_READY');
    expect(notReady.message).toMatch(/model m at http:\/\/127\.0\.0\.1:\d+: model is not ready/);

    server.setFaults({});
    expect((await connect(server)).modelVersion).toBe('v1');
    const missing = await rejection(connect(server, { model: 'nope' }));
    expect(missing.code).toBe('MODEL_NOT_FOUND');
    expect(missing.retriable).toBe(false);

    const gone = await serve();
    await gone.close();
    const unreachable = await rejection(connect(gone));
    expect(unreachable.code).toBe('MODEL_UNREACHABLE');
    expect(unreachable.message).toContain('ECONNREFUSED');
  });

  it('refuses at open when the class count is unknown or contradicts the metadata', async () => {
    const server = await serve({ m: { ...served, outputCount: undefined } });
    const unknown = await rejection(connect(server));
    expect(unknown).toBeInstanceOf(ConfigError);
    expect(unknown.message).toContain('set classCount');
    expect((await connect(server, { classCount: 3 })).featureCount).toBe(2);

    const advertised = await serve();
    expect(await rejection(connect(advertised, { classCount: 4 }))).toBeInstanceOf(ConfigError);
  });

  it('retries a server that went away, then fails retriably; after close() it refuses at once', async () => {
    const server = await serve();
    const runner = await connect(server, { maxAttempts: 2 });
    await server.close();
    const error = await rejection(runner.predict([0, 0]));
    expect(error.code).toBe('MODEL_UNREACHABLE');
    expect(error.retriable).toBe(true);

    await runner.close();
    const closed = await rejection(runner.predict([0, 0]));
    expect(closed.code).toBe('RUNNER_CLOSED');
    expect(closed.retriable).toBe(false);
  });

  it('close() ends a call in flight', async () => {
    const server = await serve({ m: served }, { hang: true });
    const runner = await connect(server, { attemptTimeoutMs: 60_000, totalBudgetMs: 60_000 });
    const pending = rejection(runner.predict([0, 0]));
    while (server.stats.inferRequests === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    await runner.close();
    expect((await pending).code).toBe('RUNNER_CLOSED');
  });
});

describe('RemoteRunner behind the worker’s circuit breaker', () => {
  /** The breaker exactly as the worker builds it (the Kafka client is created but never connected). */
  function workerBreaker(runner: RemoteRunner, breaker: BreakerOptions) {
    const logger = createLogger('test', 'silent');
    const kafka = createKafka({ brokers: ['127.0.0.1:9'], clientId: 'remote-runner-test', logger });
    return new ModelWorker({ kafka, topics: DEFAULT_TOPICS, runner, logger, breaker }).breaker;
  }

  it('opens on repeated failures, refuses calls without reaching the server, and closes after a good trial', async () => {
    const server = await serve({ m: served }, { failWith: 503 });
    const runner = await connect(server, { maxAttempts: 2, totalBudgetMs: 2000 });
    const breaker = workerBreaker(runner, { timeout: 3000, errorThresholdPercentage: 50, resetTimeout: 1500, volumeThreshold: 3 });
    try {
      const opened = once(breaker, 'open');
      for (let i = 0; i < 3; i++) expect((await rejection(breaker.fire([0, 0], `req-${Date.now()}`))).code).toBe('MODEL_UNAVAILABLE');
      await opened;
      expect(breaker.opened).toBe(true);
      const halfOpen = once(breaker, 'halfOpen');

      const seen = server.stats.inferRequests;
      const refused = await breaker.fire([0, 0], `req-${Date.now()}`).then(
        () => undefined,
        (e: unknown) => e as { code?: string },
      );
      expect(refused?.code).toBe('EOPENBREAKER');
      expect(server.stats.inferRequests).toBe(seen);

      server.setFaults({});
      await halfOpen;
      const closed = once(breaker, 'close');
      expect(await breaker.fire([6, 0], `req-${Date.now()}`)).toEqual({ probabilities: Array.from(fitted.predictProba([6, 0])) });
      await closed;
      expect(breaker.closed).toBe(true);
      expect(server.stats.inferRequests).toBe(seen + 1);
    } finally {
      breaker.shutdown();
    }
  });

  it('does not count non-retriable refusals against the model', async () => {
    const server = await serve({ m: served }, { failWith: 400 });
    const runner = await connect(server);
    const breaker = workerBreaker(runner, { timeout: 3000, errorThresholdPercentage: 50, resetTimeout: 1500, volumeThreshold: 3 });
    try {
      for (let i = 0; i < 6; i++) expect((await rejection(breaker.fire([0, 0], `req-${Date.now()}`))).code).toBe('MODEL_REJECTED');
      expect(breaker.closed).toBe(true);
      expect(breaker.stats.failures).toBe(0);
    } finally {
      breaker.shutdown();
    }
  });
});

describe('V2 server endpoints', () => {
  const getJson = async (url: string, init?: RequestInit) => {
    const res = await fetch(url, init);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  it('answers health, metadata, readiness and inference as the protocol describes', async () => {
    const server = await serve();
    expect(await getJson(`${server.url}/v2/health/live`)).toEqual({ status: 200, body: { live: true } });
    expect(await getJson(`${server.url}/v2/health/ready`)).toEqual({ status: 200, body: { ready: true } });
    expect(await getJson(`${server.url}/v2/models/m`)).toEqual({
      status: 200,
      body: {
        name: 'm',
        versions: ['v1'],
        platform: 'ensemble-stream',
        inputs: [{ name: 'input-0', datatype: 'FP64', shape: [-1, 2] }],
        outputs: [{ name: 'output-0', datatype: 'FP64', shape: [-1, 3] }],
      },
    });
    expect(await getJson(`${server.url}/v2/models/m/versions/v1/ready`)).toEqual({ status: 200, body: { name: 'm', ready: true } });

    const batch = await getJson(`${server.url}/v2/models/m/infer`, {
      method: 'POST',
      body: JSON.stringify({
        id: 'r1',
        inputs: [
          {
            name: 'input-0',
            datatype: 'FP32',
            shape: [2, 2],
            data: [
              [0, 0],
              [6, 0],
            ],
          },
        ],
      }),
    });
    expect(batch).toEqual({
      status: 200,
      body: {
        model_name: 'm',
        model_version: 'v1',
        id: 'r1',
        outputs: [{ name: 'output-0', datatype: 'FP64', shape: [2, 3], data: [...fitted.predictProba([0, 0]), ...fitted.predictProba([6, 0])] }],
      },
    });

    server.setFaults({ notReady: true });
    expect((await getJson(`${server.url}/v2/health/ready`)).status).toBe(400);
    expect(await getJson(`${server.url}/v2/models/m/ready`)).toEqual({ status: 400, body: { name: 'm', ready: false } });
  });

  it('answers errors as {"error": ...} with 400, 404, 405 and 500', async () => {
    const server = await serve({
      m: served,
      broken: {
        version: '1',
        featureCount: 1,
        predict: () => {
          throw new Error('weights missing');
        },
      },
    });
    const infer = (model: string, body: string) => getJson(`${server.url}/v2/models/${model}/infer`, { method: 'POST', body });
    const tensor = (fields: Record<string, unknown>) =>
      JSON.stringify({ inputs: [{ name: 'input-0', datatype: 'FP64', shape: [1, 2], data: [1, 2], ...fields }] });

    expect(await getJson(`${server.url}/v2/models/nope`)).toEqual({ status: 404, body: { error: 'no model "nope"' } });
    expect((await getJson(`${server.url}/v2/models/m/versions/v2`)).status).toBe(404);
    expect((await getJson(`${server.url}/v3/anything`)).status).toBe(404);
    expect((await getJson(`${server.url}/v2/models/m/infer`)).status).toBe(405);
    expect(await infer('m', '{not json')).toEqual({ status: 400, body: { error: 'request body is not valid JSON' } });
    expect((await infer('m', tensor({ shape: [1, 3], data: [1, 2, 3] }))).body.error).toContain('takes 2 features, got 3');
    expect((await infer('m', tensor({ data: [1] }))).status).toBe(400);
    expect((await infer('m', tensor({ data: [1, 'x'] }))).status).toBe(400);
    expect((await infer('m', tensor({ datatype: 'BYTES' }))).status).toBe(400);
    expect(await infer('broken', JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP64', shape: [1, 1], data: [1] }] }))).toEqual({
      status: 500,
      body: { error: 'weights missing' },
    });
  });

  it('sends the request id as the V2 request id, so the model server can log it', async () => {
    const server = await serve();
    const runner = await connect(server);
    await runner.predict([0, 0], 'req-42');
    await runner.predict([6, 0]);
    expect(server.inferBodies.map((b) => (b as { id?: string }).id)).toEqual(['req-42', undefined]);
  });

  it('refuses an oversized body with 413', async () => {
    const server = await startV2Server({ models: new Map([['m', served]]), maxRequestBytes: 64 });
    servers.push(server);
    const data = Array.from({ length: 100 }, () => 1);
    const res = await fetch(`${server.url}/v2/models/m/infer`, {
      method: 'POST',
      body: JSON.stringify({ inputs: [{ name: 'input-0', datatype: 'FP64', shape: [50, 2], data }] }),
    });
    expect(res.status).toBe(413);
  });
});
