import { Redis } from 'ioredis';

/** A Redis connection with the settings every service uses. */
export function createRedis(url: string, connectionName: string): Redis {
  return new Redis(url, {
    connectionName,
    // Fail a command after a few reconnect attempts instead of queueing forever: the Kafka batch is
    // then retried from its last committed offset, which is safe.
    maxRetriesPerRequest: 3,
    enableAutoPipelining: true,
  });
}
