import { loadAggregatorConfig } from '../core/ensemble-config.js';
import { createKafka } from '../shared/kafka.js';
import { exitProcess, runUntilSignal } from '../shared/lifecycle.js';
import { createLogger } from '../shared/log.js';
import { createRedis, describeRedis, verifyRedis } from '../shared/redis.js';
import { RedisKeys } from '../shared/redis-keys.js';
import { readRuntimeConfig } from '../shared/runtime-config.js';
import { readEvaluatorSettings } from './config.js';
import { Evaluator } from './evaluator.js';

/**
 * Starts one evaluator instance for the ensemble the aggregator config describes (class order,
 * models); configuration is read and checked here, once.
 */
export async function runEvaluator(configPath: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const runtime = readRuntimeConfig(env);
  const config = loadAggregatorConfig(configPath);
  const settings = readEvaluatorSettings(
    config.models.map((m) => m.id),
    env,
  );
  const logger = createLogger('evaluator', runtime.logLevel, { instance: runtime.instanceId });
  const kafka = createKafka({ brokers: runtime.kafkaBrokers, security: runtime.kafkaSecurity, clientId: `evaluator-${runtime.instanceId}`, logger });
  const redis = createRedis(runtime.redis, `evaluator-${runtime.instanceId}`);
  const evaluator = new Evaluator({
    kafka,
    redis,
    keys: new RedisKeys(runtime.redisNamespace),
    topics: runtime.topics,
    config,
    settings,
    instanceId: runtime.instanceId,
    logger,
    onFatal: exitProcess('evaluator', logger),
    ...(runtime.groups.evaluator === undefined ? {} : { groupId: runtime.groups.evaluator }),
  });
  const start = async () => {
    await verifyRedis(redis, describeRedis(runtime.redis));
    await evaluator.start();
  };
  await runUntilSignal(
    'evaluator',
    logger,
    start,
    async () => {
      await evaluator.stop();
      redis.disconnect();
    },
    runtime.supervision,
  );
}
