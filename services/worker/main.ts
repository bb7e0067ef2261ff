import { createKafka } from '../shared/kafka.js';
import { runUntilSignal } from '../shared/lifecycle.js';
import { createLogger } from '../shared/log.js';
import { readRuntimeConfig } from '../shared/runtime-config.js';
import { BuiltinRunner } from './builtin-runner.js';
import { ModelWorker } from './worker.js';

/** Starts one worker for a built-in model artifact; configuration is read and checked here, once. */
export async function runBuiltinWorker(artifactPath: string, modelId: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const runtime = readRuntimeConfig(env);
  const runner = await BuiltinRunner.load(artifactPath, modelId);
  const logger = createLogger('worker', runtime.logLevel, { model: runner.modelId, instance: runtime.instanceId });
  const kafka = createKafka({ brokers: runtime.kafkaBrokers, clientId: `worker-${runner.modelId}-${runtime.instanceId}`, logger });
  const worker = new ModelWorker({ kafka, topics: runtime.topics, runner, logger });
  await runUntilSignal(`worker ${runner.modelId}`, logger, () => worker.start(), () => worker.stop());
}
