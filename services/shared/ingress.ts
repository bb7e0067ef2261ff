import type { KafkaMessage, Message } from 'kafkajs';
import type { Codec } from './codec.js';
import { deadLetterMessage } from './dead-letters.js';
import { type EnsembleError, InvalidMessageError } from './errors.js';
import type { Logger } from './log.js';
import { LogSampler } from './log-sampler.js';
import { refusePoison } from './poison-guard.js';

/**
 * What every consumer checks before it trusts a message, in this order and in one place: a message
 * already found to crash its consumer (POISON), its size before anything reads it (OVERSIZED), the
 * key (MISSING_KEY), the schema and the bounded decoding (SCHEMA_MISMATCH, UNDECODABLE), and that
 * the key is the record's request id (KEY_MISMATCH). Each failure is an InvalidMessageError, which
 * the consumer turns into a dead letter with `rejectMessage`.
 */
export function decodeKeyed<T extends { requestId: string }>(message: KafkaMessage, codec: Codec<T>, maxBytes: number): T {
  refusePoison(message);
  checkSize(message, maxBytes);
  const key = requestKey(message.key);
  const record = codec.decode(message.value, message.headers);
  if (record.requestId !== key) throw new InvalidMessageError('KEY_MISMATCH', `message key "${clip(key)}" differs from requestId "${clip(record.requestId)}"`);
  return record;
}

/** Rejects a message whose key and value together exceed the limit, before anything reads it. */
export function checkSize(message: Pick<KafkaMessage, 'key' | 'value'>, maxBytes: number): void {
  const bytes = (message.key?.length ?? 0) + (message.value?.length ?? 0);
  if (bytes > maxBytes) throw new InvalidMessageError('OVERSIZED', `message of ${bytes} bytes exceeds the limit of ${maxBytes}`);
}

/** The message key as the request id it must be. */
export function requestKey(key: Buffer | null): string {
  if (key === null || key.length === 0) throw new InvalidMessageError('MISSING_KEY', 'message has no key; the key must be the request id');
  return key.toString('utf8');
}

/** Dead letters are logged sampled: the first of each service and reason per 10 s, with a count of the rest. */
const deadLetterLines = new LogSampler();

/** The dead letter for a rejected message, and its (sampled) log line. */
export function rejectMessage(
  source: { topic: string; partition: number },
  message: KafkaMessage,
  error: EnsembleError,
  service: string,
  nowMs: number,
  logger: Logger,
): Message {
  const { topic, partition } = source;
  const sampled = deadLetterLines.admit(`${service}:${error.code}`, nowMs);
  if (sampled !== undefined)
    logger.warn('dead letter', {
      topic,
      partition,
      offset: message.offset,
      code: error.code,
      reason: clip(error.message, 300),
      suppressedSinceLast: sampled.suppressed,
    });
  return deadLetterMessage({ topic, partition, offset: message.offset, key: message.key, value: message.value }, error, service, nowMs);
}

function clip(text: string, chars = 100): string {
  return text.length > chars ? `${text.slice(0, chars)}...` : text;
}
