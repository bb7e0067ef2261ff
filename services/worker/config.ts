import { DEFAULT_MAX_MESSAGE_BYTES } from '../shared/message-limits.js';
import { positiveInt } from '../shared/runtime-config.js';

/**
 * What a worker accepts as a request, read from the environment once at start-up. A feature event
 * outside these bounds is refused with a dead letter; everything inside is answered.
 */
export interface RequestLimits {
  /** Largest feature event (key and value) read; larger ones are OVERSIZED. */
  maxMessageBytes: number;
  /** How far in the future a createdAtMs may be (clients' clocks differ), ms. */
  maxClockSkewMs: number;
  /** Largest per-request deadlineMs; keep it below the aggregators' stateTtlMs. */
  maxDeadlineMs: number;
}

export const REQUEST_LIMITS: RequestLimits = { maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES, maxClockSkewMs: 30_000, maxDeadlineMs: 300_000 };

export function readRequestLimits(env: NodeJS.ProcessEnv = process.env): RequestLimits {
  return {
    maxMessageBytes: positiveInt(env.ES_MAX_MESSAGE_BYTES ?? String(REQUEST_LIMITS.maxMessageBytes), 'ES_MAX_MESSAGE_BYTES'),
    maxClockSkewMs: positiveInt(env.ES_MAX_CLOCK_SKEW_MS ?? String(REQUEST_LIMITS.maxClockSkewMs), 'ES_MAX_CLOCK_SKEW_MS'),
    maxDeadlineMs: positiveInt(env.ES_MAX_DEADLINE_MS ?? String(REQUEST_LIMITS.maxDeadlineMs), 'ES_MAX_DEADLINE_MS'),
  };
}
