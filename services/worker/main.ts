import { configSummary } from '../shared/config-summary.js';
import { createKafka } from '../shared/kafka.js';
import { exitProcess, runUntilSignal } from '../shared/lifecycle.js';
import { createLogger } from '../shared/log.js';
import { METRICS_PORTS, type MetricsServer, readMetricsEndpoint, serveMetrics } from '../shared/metrics-server.js';
import { readRuntimeConfig } from '../shared/runtime-config.js';
import { BuiltinRunner } from './builtin-runner.js';
import { readRequestLimits } from './config.js';
import type { ModelRunner } from './model-runner.js';
import { OnnxRunner, type OnnxRunnerOptions } from './onnx-runner.js';
import { RemoteRunner } from './remote-runner.js';
import { SyntheticRunner } from './synthetic-runner.js';
import { ModelWorker } from './worker.js';

/** Starts one worker for a built-in model artifact; configuration is read and checked here, once. */
export async function runBuiltinWorker(artifactPath: string, modelId: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  await runWorker(await BuiltinRunner.load(artifactPath, modelId), env);
}

/** Starts one worker for an ONNX model file (refused at start if its inputs or outputs are unusable). */
export async function runOnnxWorker(path: string, options: OnnxRunnerOptions = {}, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  await runWorker(await OnnxRunner.load(path, options), env);
}

/** Starts one worker for synthetic models (answers derived from the features; for benchmarks), several co-located if given. */
export async function runSyntheticWorker(classCount: number, modelIds: string | readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const ids = typeof modelIds === 'string' ? [modelIds] : modelIds;
  await runWorker(
    ids.map((id) => new SyntheticRunner(id, classCount)),
    env,
  );
}

/**
 * Starts one worker serving several models from one consumer (co-located): built-in artifacts, and
 * ONNX models by their `.onnx` name. Each keeps its id, breaker, dead letters and predictions.
 */
export async function runColocatedWorker(paths: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const runners: ModelRunner[] = [];
  for (const path of paths) runners.push(path.endsWith('.onnx') ? await OnnxRunner.load(path) : await BuiltinRunner.load(path));
  await runWorker(runners, env);
}

/** The worker's breaker times a whole remote call out after this; retries must fit inside. */
const REMOTE_BREAKER_TIMEOUT_MS = 1000;

/** Starts one worker for a model served over the Open Inference Protocol (V2 REST). */
export async function runRemoteWorker(baseUrl: string, model: string, modelId: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const runner = await RemoteRunner.open({ baseUrl, model, ...(modelId === undefined ? {} : { modelId }), totalBudgetMs: REMOTE_BREAKER_TIMEOUT_MS - 100 });
  await runWorker(runner, env, REMOTE_BREAKER_TIMEOUT_MS);
}

async function runWorker(runner: ModelRunner | readonly ModelRunner[], env: NodeJS.ProcessEnv, breakerTimeoutMs?: number): Promise<void> {
  const runtime = readRuntimeConfig(env);
  const limits = readRequestLimits(env);
  const runners = Array.isArray(runner) ? runner : [runner as ModelRunner];
  const name = runners.map((r) => r.modelId).join('+');
  const endpoint = readMetricsEndpoint(env, METRICS_PORTS.worker);
  const logger = createLogger('worker', runtime.logLevel, { model: name, instance: runtime.instanceId });
  const kafka = createKafka({ brokers: runtime.kafkaBrokers, security: runtime.kafkaSecurity, clientId: `worker-${name}-${runtime.instanceId}`, logger });
  const worker = new ModelWorker({
    kafka,
    topics: runtime.topics,
    runner,
    logger,
    fetch: runtime.fetch,
    limits,
    sessionTimeoutMs: runtime.groups.sessionTimeoutMs,
    onFatal: exitProcess(`worker ${name}`, logger),
    ...(breakerTimeoutMs === undefined ? {} : { breaker: { timeout: breakerTimeoutMs } }),
  });
  let metrics: MetricsServer | undefined;
  const start = async () => {
    const models = runners.map((r) => `${r.modelId}@${r.modelVersion}`).join(', ');
    logger.info('worker starting', configSummary(runtime, { models, metricsPort: endpoint?.port ?? 'off', limits }));
    if (endpoint !== undefined) metrics = await serveMetrics(worker.metrics.registry, endpoint.port, endpoint.host, logger);
    await worker.start();
  };
  const stop = async () => {
    await worker.stop();
    await metrics?.close();
  };
  await runUntilSignal(`worker ${name}`, logger, start, stop, runtime.supervision);
}
