/**
 * Suffixes of one partition's join keys, after `RedisKeys.partitionPrefix` (which the Lua scripts
 * receive in KEYS). Lua gets these names from the generated `schema` include, never from literals.
 */
export const JOIN_KEY = Object.freeze({
  request: 'req:',
  predictions: ':m',
  deadlines: 'deadlines',
  epoch: 'epoch',
  fusedBucket: 'fused:',
  fusedIndex: 'fusedix',
});

/** Fields of a request's join state hash (`RedisKeys.request`). */
export const REQUEST_FIELD = Object.freeze({
  /** open | fusing | done (JOIN_STATE) */
  state: 'st',
  /** request creation time, ms */
  createdAt: 'ca',
  /** deadline, ms since epoch */
  deadline: 'dl',
  /** OK answers joined so far */
  okAnswers: 'k',
  /** half-open models this request probes, comma separated */
  probes: 'pw',
  /** Kafka offset of the message that fused it */
  fusedBy: 'o',
  /** models it waited for when it closed, comma separated */
  awaited: 'a',
  /** models joined, comma separated */
  contributors: 'c',
});

/** Values of REQUEST_FIELD.state. */
export const JOIN_STATE = Object.freeze({ open: 'open', fusing: 'fusing', done: 'done' });

/** Fields of a partition's epoch hash (`RedisKeys.epoch`). */
export const EPOCH_FIELD = Object.freeze({
  /** creation time, ms, before which fused requests are no longer remembered */
  floor: 'floor',
  /** log time at which the state was rebuilt from Kafka */
  restoredAt: 'restoredAt',
});

/** Minutes of request creation time that one fused bucket covers, ms. */
export const FUSED_BUCKET_MS = 60_000;

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

  /** Prefix of one partition's join keys; Lua scripts append the JOIN_KEY suffixes to it. */
  partitionPrefix(partition: number): string {
    return `${this.namespace}:{p${partition}}:`;
  }

  /** Hash: a request's join state (st = open | fusing | done, o = offset that fused it, c = contributors). */
  request(partition: number, requestId: string): string {
    return `${this.partitionPrefix(partition)}${JOIN_KEY.request}${requestId}`;
  }

  /** Hash: model id -> that model's prediction (Avro bytes) for one request, until it is fused. */
  requestPredictions(partition: number, requestId: string): string {
    return `${this.request(partition, requestId)}${JOIN_KEY.predictions}`;
  }

  /** Sorted set: request id scored by its deadline (ms since epoch), per partition. */
  deadlines(partition: number): string {
    return `${this.partitionPrefix(partition)}${JOIN_KEY.deadlines}`;
  }

  /**
   * Hash: the partition's join state is whole (`floor` = creation time, ms, before which fused
   * requests are no longer remembered). Missing means the state was lost and must be rebuilt.
   */
  epoch(partition: number): string {
    return `${this.partitionPrefix(partition)}${JOIN_KEY.epoch}`;
  }

  /** Hash: request id -> 1 for every request created in `minute` (ms / 60000) that was fused. */
  fusedBucket(partition: number, minute: number): string {
    return `${this.partitionPrefix(partition)}${JOIN_KEY.fusedBucket}${minute}`;
  }

  /** Sorted set: fused-bucket minute scored by the last log time (Kafka timestamp) a request in it fused. */
  fusedIndex(partition: number): string {
    return `${this.partitionPrefix(partition)}${JOIN_KEY.fusedIndex}`;
  }

  /** Pattern matching every key of this namespace (tests and clean-up). */
  all(): string {
    return `${this.namespace}:*`;
  }

  /**
   * Prefix of every evaluator key. One hash tag for all of them: each evaluator script reads request
   * state and updates the windows it feeds in one atomic call. Scripts append the suffixes below.
   */
  evaluatorPrefix(): string {
    return `${this.namespace}:{eval}:`;
  }

  /** Hash: what each model (`p:<model>`) and the ensemble (`f`) answered for a request, its label (`l`), what was scored (`s:<subject>`). */
  evaluatorRequest(requestId: string): string {
    return `${this.evaluatorPrefix()}req:${requestId}`;
  }

  /** Hash: sums of one window bucket of one subject (count, confusion cells, log loss, Brier, errors). */
  evaluatorWindowBucket(subject: string, bucket: number): string {
    return `${this.evaluatorPrefix()}win:${subject}:${bucket}`;
  }

  /** Sorted set: the window buckets a subject holds, scored by bucket number. */
  evaluatorWindowIndex(subject: string): string {
    return `${this.evaluatorPrefix()}wix:${subject}`;
  }

  /** Hash: counters and latency-sketch buckets of one time bucket of label-independent events. */
  evaluatorEventBucket(bucket: number): string {
    return `${this.evaluatorPrefix()}ev:${bucket}`;
  }

  /** Hash: running totals since the deployment started (labelled, predictions, late, fused by status). */
  evaluatorTotals(): string {
    return `${this.evaluatorPrefix()}totals`;
  }

  /** Hash: per model, the exponentially weighted loss sum (`s:<model>`) and weight sum (`w:<model>`). */
  evaluatorLearning(): string {
    return `${this.evaluatorPrefix()}learning`;
  }

  /** String: the latest EnsembleMetrics snapshot (Avro), read by the learned-weight and best-model readers. */
  evaluatorSnapshot(): string {
    return `${this.evaluatorPrefix()}snapshot`;
  }
}

/** A Lua table constructor for a flat record of names (`{ request = 'req:', ... }`). */
function luaTable(record: Readonly<Record<string, string | number>>): string {
  const entries = Object.entries(record).map(([k, v]) => `${k} = ${typeof v === 'number' ? String(v) : `'${v.replace(/[\\']/g, '\\$&')}'`}`);
  return `{ ${entries.join(', ')} }`;
}

/**
 * The join's names as Lua, for the `schema` include of the aggregator's scripts: KEY (suffixes after
 * the partition prefix), FIELD (request state hash), STATE, EPOCH (epoch hash) and FUSED_BUCKET_MS.
 */
export function joinLuaSchema(): string {
  return [
    '-- Generated from services/shared/redis-keys.ts: the join keys and fields have one home.',
    `local KEY = ${luaTable(JOIN_KEY)}`,
    `local FIELD = ${luaTable(REQUEST_FIELD)}`,
    `local STATE = ${luaTable(JOIN_STATE)}`,
    `local EPOCH = ${luaTable(EPOCH_FIELD)}`,
    `local FUSED_BUCKET_MS = ${FUSED_BUCKET_MS}`,
  ].join('\n');
}
