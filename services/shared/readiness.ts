import type { Consumer } from 'kafkajs';

/**
 * What a supervisor asks a process: is it alive (`/healthz`) and is it doing its job (`/readyz`:
 * every Kafka consumer joined its group with its assignment, every Redis connection up, started and
 * not draining). One registry per process; createKafka and createRedis enrol what they create, so
 * services need no wiring of their own.
 */
export interface ReadinessReport {
  ready: boolean;
  phase: Phase;
  consumers: { group: string; state: ConsumerState; partitions: number }[];
  redis: { name: string; status: string }[];
}

type Phase = 'starting' | 'running' | 'draining';
type ConsumerState = 'connecting' | 'joined' | 'rebalancing' | 'crashed' | 'stopped';

interface RedisLike {
  readonly status: string;
  on(event: 'ready' | 'end' | 'error' | 'close' | 'reconnecting', listener: (...args: unknown[]) => void): unknown;
}

interface TrackedConsumer {
  group: string;
  state: ConsumerState;
  partitions: number;
}

class Readiness {
  private phase: Phase = 'starting';
  private readonly consumers = new Set<TrackedConsumer>();
  private readonly redis = new Map<RedisLike, { name: string; downSince: number | undefined }>();

  trackConsumer(consumer: Consumer, group: string): void {
    const tracked: TrackedConsumer = { group, state: 'connecting', partitions: 0 };
    this.consumers.add(tracked);
    const { events } = consumer;
    consumer.on(events.GROUP_JOIN, ({ payload }) => {
      tracked.state = 'joined';
      tracked.partitions = Object.values(payload.memberAssignment).reduce((n, parts) => n + parts.length, 0);
    });
    consumer.on(events.REBALANCING, () => {
      tracked.state = 'rebalancing';
    });
    consumer.on(events.CRASH, () => {
      tracked.state = 'crashed';
    });
    consumer.on(events.STOP, () => {
      tracked.state = 'stopped';
    });
    // A disconnected consumer is gone for good (stop, or a test's clean-up): it is forgotten.
    consumer.on(events.DISCONNECT, () => {
      this.consumers.delete(tracked);
    });
  }

  trackRedis(client: RedisLike, name: string): void {
    const entry = { name, downSince: undefined as number | undefined };
    this.redis.set(client, entry);
    const down = () => {
      entry.downSince ??= Date.now();
    };
    client.on('ready', () => {
      entry.downSince = undefined;
    });
    client.on('close', down);
    client.on('reconnecting', down);
    client.on('end', () => {
      this.redis.delete(client);
    });
  }

  setPhase(phase: Phase): void {
    this.phase = phase;
  }

  /** Redis connections down for longer than `ms`, by name. */
  redisDownLongerThan(ms: number, now = Date.now()): string[] {
    return [...this.redis.values()].filter((e) => e.downSince !== undefined && now - e.downSince > ms).map((e) => e.name);
  }

  report(): ReadinessReport {
    const consumers = [...this.consumers].map((c) => ({ ...c }));
    const redis = [...this.redis.entries()].map(([client, e]) => ({ name: e.name, status: client.status }));
    const ready = this.phase === 'running' && consumers.every((c) => c.state === 'joined') && redis.every((r) => r.status === 'ready');
    return { ready, phase: this.phase, consumers, redis };
  }
}

/** This process's readiness. */
export const readiness = new Readiness();
