/**
 * Every Redis key of ensemble-stream is built here.
 *
 * Join state is grouped by predictions partition, and the partition is the Redis Cluster hash tag
 * (`{p3}`): all predictions of one request arrive on one partition (they share the request-id key), so
 * one Lua call can join a whole Kafka batch and maintain that partition's deadline index atomically,
 * in one round trip, on one cluster slot.
 */
export class RedisKeys {
  constructor(readonly namespace: string) {}

  /** Prefix of one partition's join keys; Lua scripts append `req:<id>` and `req:<id>:m`. */
  partitionPrefix(partition: number): string {
    return `${this.namespace}:{p${partition}}:`;
  }

  /** Hash: a request's join state (st = open | fusing | done, o = offset that fused it, c = contributors). */
  request(partition: number, requestId: string): string {
    return `${this.partitionPrefix(partition)}req:${requestId}`;
  }

  /** Hash: model id -> that model's prediction (Avro bytes) for one request, until it is fused. */
  requestPredictions(partition: number, requestId: string): string {
    return `${this.request(partition, requestId)}:m`;
  }

  /** Sorted set: request id scored by its deadline (ms since epoch), per partition. */
  deadlines(partition: number): string {
    return `${this.partitionPrefix(partition)}deadlines`;
  }

  /** Pattern matching every key of this namespace (tests and clean-up). */
  all(): string {
    return `${this.namespace}:*`;
  }
}
