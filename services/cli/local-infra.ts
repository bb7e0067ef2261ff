import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { createKafka, ensureTopics } from '../shared/kafka.js';
import type { Logger } from '../shared/log.js';
import { repoRoot } from '../shared/repo-root.js';
import type { RuntimeConfig } from '../shared/runtime-config.js';
import { allTopics } from '../shared/topics.js';
import { ConfigError, EnsembleError } from '../shared/errors.js';

/**
 * The local Kafka and Redis processes the demo, the benchmark and the cluster suites run on
 * (infra/local/*.sh), plus the project's topics. `up` says what it started, so `down` stops only that.
 */
export interface StartedInfra {
  kafka: boolean;
  redis: boolean;
  kafkaCluster?: boolean;
  redisCluster?: boolean;
}

export interface InfraShape {
  /** 1: one combined KRaft node (kafka.sh); more: a cluster of that many nodes (kafka-cluster.sh). */
  brokers: number;
  /** A Redis Cluster of three masters with a replica each (redis-cluster.sh) instead of one server. */
  redisCluster: boolean;
}

type Script = 'kafka' | 'redis' | 'kafka-cluster' | 'redis-cluster';

function script(name: Script, action: string, env: NodeJS.ProcessEnv): { status: number; output: string } {
  const result = spawnSync('bash', [join(repoRoot(), 'infra', 'local', `${name}.sh`), action], { env, encoding: 'utf8' });
  return { status: result.status ?? 1, output: `${result.stdout ?? ''}${result.stderr ?? ''}`.trim() };
}

function running(name: Script, env: NodeJS.ProcessEnv): boolean {
  return script(name, 'status', env).status === 0;
}

/** The port of KAFKA_BROKERS when it names one broker on this machine, which kafka.sh can run. */
function localBrokerPort(runtime: RuntimeConfig): string | undefined {
  const [only, ...more] = runtime.kafkaBrokers;
  const m = /^(?:127\.0\.0\.1|localhost):(\d+)$/.exec(only ?? '');
  return more.length === 0 && m !== null ? m[1] : undefined;
}

/**
 * Whether the local scripts look after Kafka: always for a cluster of local brokers; for one broker,
 * unless KAFKA_BROKERS names brokers elsewhere (or several), which they cannot start (those must
 * answer as they are).
 */
export function managesKafka(runtime: RuntimeConfig, shape: InfraShape, env: NodeJS.ProcessEnv): boolean {
  return shape.brokers > 1 || env.KAFKA_BROKERS === undefined || localBrokerPort(runtime) !== undefined;
}

/**
 * The ports of the local brokers: for one, KAFKA_BROKERS's port when given (kafka.sh's KAFKA_PORT), so
 * a broker already answering there is used and none is started on 9092; for a cluster, KAFKA_BROKERS
 * (all on 127.0.0.1) when given, else 9092 upwards; the Redis Cluster's from REDIS_CLUSTER_PORTS
 * (7001-7006).
 */
export function clusterEnv(runtime: RuntimeConfig, shape: InfraShape, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env };
  const port = env.KAFKA_BROKERS === undefined ? undefined : localBrokerPort(runtime);
  if (shape.brokers === 1 && port !== undefined) out.KAFKA_PORT = port;
  if (shape.brokers > 1) {
    if (env.KAFKA_BROKERS === undefined) {
      out.KAFKA_CLUSTER_PORTS = Array.from({ length: shape.brokers }, (_, i) => 9092 + i).join(',');
    } else {
      if (runtime.kafkaBrokers.length !== shape.brokers || !runtime.kafkaBrokers.every((b) => b.startsWith('127.0.0.1:'))) {
        throw new ConfigError(`infra up --brokers ${shape.brokers}: KAFKA_BROKERS must list ${shape.brokers} addresses on 127.0.0.1, one per local broker`);
      }
      out.KAFKA_CLUSTER_PORTS = runtime.kafkaBrokers.map((b) => b.split(':')[1]).join(',');
    }
  }
  return out;
}

/** The broker list a cluster's clients use. */
function brokersOf(runtime: RuntimeConfig, env: NodeJS.ProcessEnv): string[] {
  return env.KAFKA_CLUSTER_PORTS === undefined ? runtime.kafkaBrokers : env.KAFKA_CLUSTER_PORTS.split(',').map((p) => `127.0.0.1:${p}`);
}

export async function infraUp(
  runtime: RuntimeConfig,
  logger: Logger,
  env: NodeJS.ProcessEnv = process.env,
  shape: InfraShape = { brokers: 1, redisCluster: false },
): Promise<StartedInfra> {
  const started: StartedInfra = { kafka: false, redis: false };
  const scriptEnv = clusterEnv(runtime, shape, env);
  const redis: Script = shape.redisCluster ? 'redis-cluster' : 'redis';
  const kafka: Script = shape.brokers > 1 ? 'kafka-cluster' : 'kafka';
  for (const name of managesKafka(runtime, shape, env) ? [redis, kafka] : [redis]) {
    if (running(name, scriptEnv)) continue;
    logger.info(`starting local ${name}`);
    const at = Date.now();
    const r = script(name, 'start', scriptEnv);
    if (r.status !== 0) throw new EnsembleError(`could not start local ${name}:\n${r.output}`, { code: 'INFRA_START' });
    logger.info(`local ${name} started`, { ms: Date.now() - at });
    if (name === 'kafka') started.kafka = true;
    else if (name === 'redis') started.redis = true;
    else if (name === 'kafka-cluster') started.kafkaCluster = true;
    else started.redisCluster = true;
  }
  const brokers = brokersOf(runtime, scriptEnv);
  const client = createKafka({ brokers, security: runtime.kafkaSecurity, clientId: 'ensemble-stream-infra', logger });
  const admin = client.admin();
  await admin.connect();
  try {
    const created = await ensureTopics(admin, allTopics(runtime.topics), runtime.partitions, runtime.replication);
    if (created.length > 0) logger.info('created topics', { topics: created, partitions: runtime.partitions, ...runtime.replication });
  } finally {
    await admin.disconnect();
  }
  return started;
}

const EVERYTHING: StartedInfra = { kafka: true, redis: true, kafkaCluster: true, redisCluster: true };

/** Stops what `up` started (by default anything the local scripts started). */
export function infraDown(started: StartedInfra = EVERYTHING, env: NodeJS.ProcessEnv = process.env): void {
  if (started.kafka) script('kafka', 'stop', env);
  if (started.kafkaCluster) script('kafka-cluster', 'stop', env);
  if (started.redis) script('redis', 'stop', env);
  if (started.redisCluster) script('redis-cluster', 'stop', env);
}
