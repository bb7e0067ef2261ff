import { describeRedis } from './redis.js';
import type { RuntimeConfig } from './runtime-config.js';

/**
 * What a service logs once at start: where it connects and what it is called, without secrets
 * (REDIS_URL is redacted, SASL is named by its mechanism only).
 */
export function configSummary(runtime: RuntimeConfig, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    kafkaBrokers: runtime.kafkaBrokers,
    kafkaSasl: runtime.kafkaSecurity.sasl?.mechanism ?? 'none',
    kafkaTls: runtime.kafkaSecurity.tls !== undefined,
    redis: describeRedis(runtime.redis),
    redisNamespace: runtime.redisNamespace,
    topics: runtime.topics,
    instance: runtime.instanceId,
    healthPort: runtime.supervision.healthPort ?? 'off',
    ...extra,
  };
}
