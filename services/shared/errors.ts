/**
 * The one error hierarchy of ensemble-stream. Every error says whether retrying can help
 * (`retriable`), carries a stable `code` for logs, metrics and dead letters, and keeps its `cause`.
 * Breakers and retry loops read `retriable` instead of guessing from messages.
 */
export interface EnsembleErrorOptions {
  code: string;
  retriable?: boolean;
  cause?: unknown;
}

export class EnsembleError extends Error {
  readonly code: string;
  readonly retriable: boolean;

  constructor(message: string, options: EnsembleErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = options.code;
    this.retriable = options.retriable ?? false;
  }
}

/** Configuration that cannot be used; raised at start-up, never retried. */
export class ConfigError extends EnsembleError {
  constructor(message: string, cause?: unknown) {
    super(message, { code: 'BAD_CONFIG', cause });
  }
}

/**
 * A message that can never be processed as it is: it goes to the dead-letter topic with `code` as
 * its reason code. Never retriable, and never counts against a model's health.
 */
export class InvalidMessageError extends EnsembleError {
  constructor(code: InvalidMessageCode, message: string, cause?: unknown) {
    super(message, { code, cause });
  }
}

export type InvalidMessageCode =
  | 'UNDECODABLE'
  | 'SCHEMA_MISMATCH'
  | 'OVERSIZED'
  | 'INVALID_PROBABILITIES'
  | 'INVALID_VALUE'
  | 'WRONG_CLASS_COUNT'
  | 'WRONG_FEATURE_COUNT'
  | 'UNKNOWN_MODEL'
  | 'MISSING_KEY'
  | 'KEY_MISMATCH'
  | 'EXPIRED'
  /** A feature event's createdAtMs is zero, negative or in the future beyond the allowed clock skew. */
  | 'INVALID_TIMESTAMP'
  /** A request's deadlineMs is not positive or above the configured maximum. */
  | 'INVALID_DEADLINE'
  /** A control record (es.control) that no aggregator signed. */
  | 'FORGED_CONTROL'
  /** A message that failed its consumer twice, the second time alone: skipped so the partition moves on. */
  | 'POISON';

/** A model could not answer (inference failed, remote model down): retriable, feeds breakers. */
export class ModelError extends EnsembleError {
  constructor(message: string, options: { retriable?: boolean; cause?: unknown; code?: string } = {}) {
    super(message, { code: options.code ?? 'MODEL_FAILED', retriable: options.retriable ?? true, cause: options.cause });
  }
}

/** Kafka or Redis misbehaved; the batch is retried from the last committed offset. */
export class InfrastructureError extends EnsembleError {
  constructor(message: string, cause?: unknown) {
    super(message, { code: 'INFRASTRUCTURE', retriable: true, cause });
  }
}

export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
