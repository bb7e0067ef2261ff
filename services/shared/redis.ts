import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { ConfigError, InfrastructureError } from './errors.js';
import { tlsOptions } from './kafka.js';
import { readiness } from './readiness.js';
import { readRedisConnection, type RedisConnection } from './runtime-config.js';

/** A single server or a Redis Cluster: scripts (defineCommand), pipelines and commands work on both. */
export type RedisClient = Redis | Cluster;

/**
 * A Redis connection with the settings every service uses: a Cluster client when the connection
 * names a cluster, ACL user and password, TLS. A string is read as REDIS_URL (tests, tools).
 */
export function createRedis(connection: RedisConnection | string, connectionName: string): RedisClient {
  const c = typeof connection === 'string' ? readRedisConnection({ REDIS_URL: connection }) : connection;
  const options: RedisOptions = {
    connectionName,
    // Fail a command after a few reconnect attempts instead of queueing forever: the Kafka batch is
    // then retried from its last committed offset, which is safe.
    maxRetriesPerRequest: 3,
    ...(c.username === undefined ? {} : { username: c.username }),
    ...(c.password === undefined ? {} : { password: c.password.reveal() }),
    ...(c.tls === undefined ? {} : { tls: tlsOptions(c.tls) }),
  };
  const client = c.cluster
    ? createCluster(c, options)
    : new Redis({ ...options, host: c.nodes[0]?.host ?? '127.0.0.1', port: c.nodes[0]?.port ?? 6379, db: c.db, enableAutoPipelining: true });
  readiness.trackRedis(client, connectionName);
  return client;
}

function createCluster(c: RedisConnection, options: RedisOptions): Cluster {
  return new Cluster(c.nodes, {
    redisOptions: options,
    // Auto-pipelining groups commands per node, so a batch's calls to one slot still go together.
    enableAutoPipelining: true,
    // Every read goes to the master: the join must see its own writes.
    scaleReads: 'master',
    // A failover moves slots: follow MOVED/ASK and refresh the slot map rather than fail at once.
    maxRedirections: 16,
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 200,
    slotsRefreshTimeout: 2000,
  });
}

/**
 * Checks at start-up that Redis answers and accepts the credentials, within `timeoutMs`: wrong
 * credentials or an unreachable server fail the service at once with a message naming the problem
 * (never the password), instead of surfacing later as failing batches.
 */
export async function verifyRedis(redis: RedisClient, describe: string, timeoutMs = 10_000): Promise<void> {
  let lastError: unknown;
  const onError = (error: unknown) => {
    lastError = error;
  };
  redis.on('error', onError);
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await redis.ping();
        return;
      } catch (error) {
        const problem = lastError ?? error;
        const message = problem instanceof Error ? problem.message : String(problem);
        if (/WRONGPASS|NOAUTH|NOPERM|invalid password|invalid username/i.test(message)) {
          throw new ConfigError(`Redis at ${describe} refused the credentials: ${message}`);
        }
        if (Date.now() > deadline) throw new InfrastructureError(`Redis at ${describe} did not answer within ${timeoutMs} ms: ${message}`, problem);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  } finally {
    redis.off('error', onError);
  }
}

/** Where a connection points, for messages (no credentials). */
export function describeRedis(c: RedisConnection): string {
  const nodes = c.nodes.map((n) => `${n.host}:${n.port}`).join(',');
  return `${c.cluster ? 'cluster ' : ''}${c.tls === undefined ? 'redis' : 'rediss'}://${c.username === undefined ? '' : `${c.username}@`}${nodes}`;
}
