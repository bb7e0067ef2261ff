// Once per cluster run (test/cluster/run.sh starts everything first): a Kafka cluster of at least
// three brokers, a Redis Cluster, a broker with a SCRAM listener and a Redis with an ACL user. Each
// must answer, or the run fails here, loudly; nothing is skipped.
import type { TestProject } from 'vitest/node';
import { createRedis, describeRedis, verifyRedis } from '../../services/shared/redis.js';
import { readRedisConnection } from '../../services/shared/runtime-config.js';
import { probeKafka, type TestInfra } from '../support/infra.js';
import type { CredentialsInfra } from './credentials-infra.js';

function required(env: NodeJS.ProcessEnv, name: string): string {
  const value = env[name]?.trim();
  if (value === undefined || value === '') {
    throw new Error(`${name} is not set: run the cluster suites with test/cluster/run.sh (npm run test:cluster), which starts the clusters and sets it`);
  }
  return value;
}

export default async function setup(project: TestProject): Promise<void> {
  const env = process.env;
  const kafkaBrokers = required(env, 'KAFKA_BROKERS')
    .split(',')
    .map((b) => b.trim());
  if (kafkaBrokers.length < 3) throw new Error(`KAFKA_BROKERS lists ${kafkaBrokers.length} broker(s); the cluster suites need three`);
  const redisUrl = required(env, 'REDIS_URL');
  const redis = readRedisConnection({ REDIS_URL: redisUrl });
  if (!redis.cluster) throw new Error(`REDIS_URL (${redisUrl}) names one node; the cluster suites need a Redis Cluster`);
  const credentials: CredentialsInfra = {
    scramBrokers: required(env, 'ES_TEST_SCRAM_BROKERS').split(','),
    scramUser: required(env, 'ES_TEST_SCRAM_USER'),
    scramPassword: required(env, 'ES_TEST_SCRAM_PASSWORD'),
    aclRedisUrl: required(env, 'ES_TEST_ACL_REDIS_URL'),
    aclUser: required(env, 'ES_TEST_ACL_USER'),
    aclPassword: required(env, 'ES_TEST_ACL_PASSWORD'),
  };
  const brokers = await import('kafkajs').then(async ({ Kafka, logLevel }) => {
    const admin = new Kafka({ clientId: 'cluster-probe', brokers: kafkaBrokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      return (await admin.describeCluster()).brokers.length;
    } finally {
      await admin.disconnect();
    }
  });
  if (brokers < 3) throw new Error(`the Kafka cluster at ${kafkaBrokers.join(',')} has ${brokers} live broker(s), not 3`);
  await probeKafka(kafkaBrokers);
  const client = createRedis(redis, 'cluster-probe');
  try {
    await verifyRedis(client, describeRedis(redis));
  } finally {
    client.disconnect();
  }
  console.log(
    `cluster infra: kafka ${kafkaBrokers.join(',')} (${brokers} brokers), redis cluster ${redisUrl}; SCRAM broker ${credentials.scramBrokers.join(',')}, ACL redis ${credentials.aclRedisUrl}`,
  );
  project.provide('infra', { mode: 'external', kafkaBrokers, redisUrl, containers: [] } satisfies TestInfra);
  project.provide('credentials', credentials);
}
