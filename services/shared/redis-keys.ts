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
  /** when the join closed it, ms (a replay fuses it with the same time, so to the same bytes) */
  fusedAt: 'ft',
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
   * The evaluator's keys are spread over Redis Cluster slots two ways, so its load shares out across
   * nodes: by request (a request's answers and label, plus the label-independent counters of the
   * requests in that shard) over EVALUATOR_REQUEST_SHARDS hash tags `{eval:r<n>}`, and by subject (a
   * model or the ensemble: its window buckets, sample sequence, learned loss and scored flags) under
   * `{eval:s:<subject>}`. Every script call works on one shard or one subject, so on one slot.
   */
  evaluatorShard(requestId: string): number {
    return fnv1a(requestId) % EVALUATOR_REQUEST_SHARDS;
  }

  /** Every request shard, for reads that merge them. */
  evaluatorShards(): number[] {
    return Array.from({ length: EVALUATOR_REQUEST_SHARDS }, (_, i) => i);
  }

  /** Prefix of one request shard's keys; the record and read scripts append `req:<id>` and `ev:<bucket>`. */
  evaluatorShardPrefix(shard: number): string {
    return `${this.namespace}:{eval:r${shard}}:`;
  }

  /** Hash: what each model (`p:<model>`) and the ensemble (`f`) answered for a request, and its label (`l`). */
  evaluatorRequest(requestId: string): string {
    return `${this.evaluatorShardPrefix(this.evaluatorShard(requestId))}req:${requestId}`;
  }

  /** Hash: counters and latency-sketch buckets of one time bucket of one shard's label-independent events. */
  evaluatorEventBucket(shard: number, bucket: number): string {
    return `${this.evaluatorShardPrefix(shard)}ev:${bucket}`;
  }

  /** Hash: one shard's running totals since the deployment started (predictions, late, fused by status). */
  evaluatorTotals(shard: number): string {
    return `${this.evaluatorShardPrefix(shard)}totals`;
  }

  /** Prefix of one subject's keys; the score and read scripts append `win:<bucket>`, `wix` and `done:<request id>`. */
  evaluatorSubjectPrefix(subject: string): string {
    return `${this.namespace}:{eval:s:${subject}}:`;
  }

  /** Hash: a subject's labelled-sample count (`lab`) and learned-weight loss sums (`s` weighted loss, `w` weight). */
  evaluatorSubjectState(subject: string): string {
    return `${this.evaluatorSubjectPrefix(subject)}state`;
  }

  /** Hash: sums of one window bucket of one subject (count, confusion cells, log loss, Brier, errors). */
  evaluatorWindowBucket(subject: string, bucket: number): string {
    return `${this.evaluatorSubjectPrefix(subject)}win:${bucket}`;
  }

  /** Sorted set: the window buckets a subject holds, scored by bucket number. */
  evaluatorWindowIndex(subject: string): string {
    return `${this.evaluatorSubjectPrefix(subject)}wix`;
  }

  /** String: set once a request's answer from the subject was scored (expires with the request). */
  evaluatorScored(subject: string, requestId: string): string {
    return `${this.evaluatorSubjectPrefix(subject)}done:${requestId}`;
  }

  /** String: the latest EnsembleMetrics snapshot (Avro), read by the learned-weight and best-model readers. */
  evaluatorSnapshot(): string {
    return `${this.namespace}:{eval:snapshot}`;
  }
}

/** Request shards of the evaluator (hash tags); changing it orphans the evaluator's stored state. */
export const EVALUATOR_REQUEST_SHARDS = 16;

/** FNV-1a over the UTF-16 code units: a stable, cheap spread of request ids over shards. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
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

/** Suffixes of the evaluator's keys after a shard's or a subject's prefix (`RedisKeys.evaluatorShardPrefix`, `evaluatorSubjectPrefix`). */
export const EVAL_KEY = Object.freeze({
  request: 'req:',
  eventBucket: 'ev:',
  windowBucket: 'win:',
  windowIndex: 'wix',
  scored: 'done:',
});

/** Fields of an evaluator request hash: each answer under its own field, written once. */
export const EVAL_REQUEST_FIELD = Object.freeze({
  /** `p:<model>`: a model's answer */
  answer: 'p:',
  /** the fused answer */
  fused: 'f',
  /** the label */
  label: 'l',
  /** models the fused result listed missing for DEADLINE or CIRCUIT_OPEN */
  lateEligible: 'ml',
});

/** Counter fields of a shard's totals and event buckets, each followed by a model or a status. */
export const EVAL_COUNTER = Object.freeze({
  predictions: 'pred:',
  fused: 'fused:',
  missing: 'miss:',
  late: 'late:',
  /** `lat:<subject>:<sketch bucket>`: latency sketch counts */
  latency: 'lat:',
});

/** Fields of a window bucket (services/evaluator/window.ts). */
export const EVAL_WINDOW_FIELD = Object.freeze({
  samples: 'n',
  /** `c:<true>:<predicted>`: a confusion cell */
  cell: 'c:',
  withProbabilities: 'np',
  logLoss: 'll',
  brier: 'br',
  absError: 'ae',
  squaredError: 'se',
});

/** Fields of a subject's state hash. */
export const EVAL_SUBJECT_FIELD = Object.freeze({
  labelled: 'lab',
  lossSum: 's',
  weightSum: 'w',
});

/** The evaluator's names as Lua, for the `schema` include of its scripts. */
export function evaluatorLuaSchema(): string {
  return [
    '-- Generated from services/shared/redis-keys.ts: the evaluator keys and fields have one home.',
    `local KEY = ${luaTable(EVAL_KEY)}`,
    `local FIELD = ${luaTable(EVAL_REQUEST_FIELD)}`,
    `local COUNTER = ${luaTable(EVAL_COUNTER)}`,
    `local WINDOW = ${luaTable(EVAL_WINDOW_FIELD)}`,
    `local SUBJECT = ${luaTable(EVAL_SUBJECT_FIELD)}`,
  ].join('\n');
}
