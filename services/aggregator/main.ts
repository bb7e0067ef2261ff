import { configSummary } from '../shared/config-summary.js';
import { createKafka } from '../shared/kafka.js';
import { readControlSecret } from '../shared/control-records.js';
import { exitProcess, runUntilSignal } from '../shared/lifecycle.js';
import { createLogger } from '../shared/log.js';
import { METRICS_PORTS, type MetricsServer, readMetricsEndpoint, serveMetrics } from '../shared/metrics-server.js';
import { createRedis, describeRedis, verifyRedis } from '../shared/redis.js';
import { RedisKeys } from '../shared/redis-keys.js';
import { readRuntimeConfig } from '../shared/runtime-config.js';
import { Aggregator } from './aggregator.js';
import { loadAggregatorConfig } from '../core/ensemble-config.js';
import { buildFuser } from './fuser-factory.js';
import { JoinStore, joinStoreOptions } from './join-store.js';

const GENERATED_SECRET_WARNING =
  'ES_CONTROL_SECRET is not set: deadline records are signed with the local secret; give every aggregator the same ES_CONTROL_SECRET in production';

/** Starts one aggregator instance; configuration is read and checked here, once. */
export async function runAggregator(configPath: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const runtime = readRuntimeConfig(env);
  const config = loadAggregatorConfig(configPath);
  const logger = createLogger('aggregator', runtime.logLevel, { instance: runtime.instanceId });
  const control = readControlSecret(env);
  const endpoint = readMetricsEndpoint(env, METRICS_PORTS.aggregator);
  if (control.source === 'generated') logger.warn(GENERATED_SECRET_WARNING, { file: control.file });
  const kafka = createKafka({ brokers: runtime.kafkaBrokers, security: runtime.kafkaSecurity, clientId: `aggregator-${runtime.instanceId}`, logger });
  const redis = createRedis(runtime.redis, `aggregator-${runtime.instanceId}`);
  const sweeperRedis = createRedis(runtime.redis, `aggregator-sweeper-${runtime.instanceId}`);
  const keys = new RedisKeys(runtime.redisNamespace);
  const joinStore = new JoinStore(redis, keys, joinStoreOptions(config));
  const fusion = await buildFuser(config, configPath, { redis: sweeperRedis, keys, logger });
  const aggregator = new Aggregator({
    kafka,
    sweeperRedis,
    topics: runtime.topics,
    config,
    joinStore,
    logger,
    fuser: fusion.fuser,
    fetch: runtime.fetch,
    controlSecret: control.secret,
    onFatal: exitProcess('aggregator', logger),
    sweepIntervalMs: runtime.sweepIntervalMs,
    sessionTimeoutMs: runtime.groups.sessionTimeoutMs,
    ...(runtime.groups.aggregator === undefined ? {} : { groupId: runtime.groups.aggregator }),
  });
  let metrics: MetricsServer | undefined;
  const start = async () => {
    const { strategy, deadlineMs, quorum } = config;
    const models = config.models.map((m) => m.id);
    logger.info(
      'aggregator starting',
      configSummary(runtime, { config: configPath, strategy, models, deadlineMs, quorum, metricsPort: endpoint?.port ?? 'off' }),
    );
    if (endpoint !== undefined) metrics = await serveMetrics(aggregator.metrics.registry, endpoint.port, endpoint.host, logger);
    await verifyRedis(redis, describeRedis(runtime.redis));
    fusion.start();
    await aggregator.start();
  };
  await runUntilSignal(
    'aggregator',
    logger,
    start,
    async () => {
      await aggregator.stop();
      await metrics?.close();
      fusion.stop();
      redis.disconnect();
      sweeperRedis.disconnect();
    },
    runtime.supervision,
  );
}
