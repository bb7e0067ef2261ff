/**
 * Every Kafka topic and header name of ensemble-stream is built here. Defaults match
 * docker-compose.yml; each name can be overridden (ES_TOPIC_<NAME>) or prefixed (ES_TOPIC_PREFIX),
 * which is how tests give every run topics of its own.
 */
export interface Topics {
  /** Feature events, keyed by request id: consumed by every model worker. */
  readonly features: string;
  /** Predictions, keyed by request id: one per model per request, consumed by the aggregator. */
  readonly predictions: string;
  /** Exactly one fused result per request id. */
  readonly fused: string;
  /** Ground-truth labels, keyed by request id, arriving any time later. */
  readonly labels: string;
  /** Periodic rolling-metrics snapshots. */
  readonly metrics: string;
  /** Messages that cannot be processed, with the reason and the original bytes. */
  readonly deadLetters: string;
}

export const DEFAULT_TOPICS: Topics = {
  features: 'features',
  predictions: 'predictions',
  fused: 'fused-predictions',
  labels: 'labels',
  metrics: 'ensemble-metrics',
  deadLetters: 'dead-letters',
};

const ENV_NAMES: Record<keyof Topics, string> = {
  features: 'ES_TOPIC_FEATURES',
  predictions: 'ES_TOPIC_PREDICTIONS',
  fused: 'ES_TOPIC_FUSED',
  labels: 'ES_TOPIC_LABELS',
  metrics: 'ES_TOPIC_METRICS',
  deadLetters: 'ES_TOPIC_DEAD_LETTERS',
};

export function topicsFromEnv(env: NodeJS.ProcessEnv = process.env): Topics {
  return withPrefix(env.ES_TOPIC_PREFIX ?? '', {
    features: env[ENV_NAMES.features] ?? DEFAULT_TOPICS.features,
    predictions: env[ENV_NAMES.predictions] ?? DEFAULT_TOPICS.predictions,
    fused: env[ENV_NAMES.fused] ?? DEFAULT_TOPICS.fused,
    labels: env[ENV_NAMES.labels] ?? DEFAULT_TOPICS.labels,
    metrics: env[ENV_NAMES.metrics] ?? DEFAULT_TOPICS.metrics,
    deadLetters: env[ENV_NAMES.deadLetters] ?? DEFAULT_TOPICS.deadLetters,
  });
}

export function withPrefix(prefix: string, topics: Topics = DEFAULT_TOPICS): Topics {
  if (prefix === '') return topics;
  return {
    features: prefix + topics.features,
    predictions: prefix + topics.predictions,
    fused: prefix + topics.fused,
    labels: prefix + topics.labels,
    metrics: prefix + topics.metrics,
    deadLetters: prefix + topics.deadLetters,
  };
}

/** The environment that makes a child process use these topics. */
export function topicsToEnv(topics: Topics): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, envName] of Object.entries(ENV_NAMES)) env[envName] = topics[name as keyof Topics];
  return env;
}

export function allTopics(topics: Topics): string[] {
  return [topics.features, topics.predictions, topics.fused, topics.labels, topics.metrics, topics.deadLetters];
}

/** Message header names. Values are Avro binary; these say which schema wrote them. */
export const HEADERS = {
  schema: 'es.schema',
  schemaVersion: 'es.schema.version',
  /** Marks a control record on the predictions topic (see ARCHITECTURE.md, deadlines). */
  control: 'es.control',
  /** Dead letters: why the message was rejected. */
  reason: 'es.reason',
  /** Dead letters whose original was cut to fit: `key=<bytes>,value=<bytes>` of the original. */
  truncated: 'es.truncated',
  /** Deadline records: when the sweeper signed it (ms) and the signature (control-records.ts). */
  controlAt: 'es.control.at',
  controlSignature: 'es.control.sig',
} as const;

export const CONTROL_DEADLINE = 'deadline';

/** Consumer group names: one group per model (workers), one for the aggregator tier, one for the evaluators. */
export const GROUPS = {
  worker: (modelId: string) => `ensemble-stream.worker.${modelId}`,
  aggregator: 'ensemble-stream.aggregator',
  evaluator: 'ensemble-stream.evaluator',
} as const;
