// The Kafka and Redis that an integration run uses, as the global setup provides them, and the probe
// that proves they answer. Tests read the addresses with `testInfra()`.
import { randomUUID } from 'node:crypto';
import { setTimeout } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { Kafka, logLevel } from 'kafkajs';
import { inject } from 'vitest';
import type { StartedContainerInfo } from './containers.js';

/**
 * `containers`: started for this run by testcontainers; `external`: given by KAFKA_BROKERS and
 * REDIS_URL (a local broker, a compose stack, CI services).
 */
export type InfraMode = 'containers' | 'external';

export interface TestInfra {
  mode: InfraMode;
  kafkaBrokers: string[];
  redisUrl: string;
  /** Empty in `external` mode. */
  containers: StartedContainerInfo[];
}

declare module 'vitest' {
  export interface ProvidedContext {
    infra: TestInfra;
  }
}

/** The infrastructure of this run; only inside test files of the `integration` project. */
export function testInfra(): TestInfra {
  return inject('infra');
}

/** Kafka or Redis did not answer at the address the run was given. */
export class InfraUnreachableError extends Error {
  override readonly name = 'InfraUnreachableError';
  constructor(
    readonly service: 'kafka' | 'redis',
    readonly address: string,
    options: { cause: unknown },
  ) {
    super(`${service} does not answer at ${address}: ${String(options.cause)}`, options);
  }
}

/**
 * Asks Kafka for its cluster metadata and its group and transaction coordinators, and Redis for a
 * PONG; throws InfraUnreachableError otherwise.
 */
export async function assertReachable(infra: Pick<TestInfra, 'kafkaBrokers' | 'redisUrl'>): Promise<void> {
  await Promise.all([probeKafka(infra.kafkaBrokers), probeRedis(infra.redisUrl)]);
}

export async function probeKafka(brokers: string[]): Promise<void> {
  const kafka = new Kafka({
    clientId: 'infra-probe',
    brokers,
    connectionTimeout: 3_000,
    retry: { retries: 3 },
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  const producer = kafka.producer({ transactionalId: `infra-probe-${randomUUID()}`, idempotent: true, maxInFlightRequests: 1 });
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    if (cluster.brokers.length === 0) throw new Error('metadata lists no broker');
    // A new cluster has coordinators only once its offsets and transaction state topics are created
    // and loaded; waiting for both here keeps that start-up out of the first tests' timings and logs.
    await untilAnswered(() => admin.describeGroups(['infra-probe']));
    await producer.connect();
    await untilAnswered(async () => (await producer.transaction()).abort());
  } catch (cause) {
    throw new InfraUnreachableError('kafka', brokers.join(','), { cause });
  } finally {
    await producer.disconnect();
    await admin.disconnect();
  }
}

/** Repeats `request` until it resolves, for at most `timeoutMs`; then rethrows its last error. */
export async function untilAnswered(request: () => Promise<unknown>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await request();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await setTimeout(250);
    }
  }
}

async function probeRedis(url: string): Promise<void> {
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 3_000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  // The socket error (ECONNREFUSED, ...) says more than the "Connection is closed" that follows it.
  let socketError: unknown;
  redis.on('error', (error: unknown) => {
    socketError = error;
  });
  try {
    await redis.connect();
    const reply = await redis.ping();
    if (reply !== 'PONG') throw new Error(`PING answered ${reply}`);
  } catch (cause) {
    throw new InfraUnreachableError('redis', url, { cause: socketError ?? cause });
  } finally {
    redis.disconnect();
  }
}
