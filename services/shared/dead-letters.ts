import type { Message } from 'kafkajs';
import { codecs } from './codec.js';
import { type EnsembleError, InvalidMessageError } from './errors.js';
import { HEADERS } from './topics.js';

/** Where a rejected message came from. */
export interface SourceMessage {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
}

/**
 * The dead-letter record for a message that cannot be processed: the original bytes untouched, where
 * they came from, and a readable reason. Producing it (in the same transaction or batch as the
 * results) is what lets the consumer move on without losing anything.
 */
export function deadLetterMessage(source: SourceMessage, error: EnsembleError, service: string, nowMs: number): Message {
  const value = codecs.deadLetter.encode({
    sourceTopic: source.topic,
    sourcePartition: source.partition,
    sourceOffset: source.offset,
    key: source.key,
    value: source.value,
    reasonCode: error.code,
    reason: error.message,
    service,
    failedAtMs: nowMs,
  });
  return {
    key: source.key,
    value,
    headers: { ...codecs.deadLetter.headers, [HEADERS.reason]: error.code },
  };
}

/** Rejects a message over the size limit before anything reads it. */
export function checkSize(value: Buffer | null, maxBytes: number): void {
  if (value !== null && value.length > maxBytes) {
    throw new InvalidMessageError('OVERSIZED', `message of ${value.length} bytes exceeds the limit of ${maxBytes}`);
  }
}

/** The message key as the request id it must be. */
export function requestKey(key: Buffer | null): string {
  if (key === null || key.length === 0) throw new InvalidMessageError('MISSING_KEY', 'message has no key; the key must be the request id');
  return key.toString('utf8');
}
