import type { Message } from 'kafkajs';
import { codecs } from './codec.js';
import type { EnsembleError } from './errors.js';
import { DEAD_LETTER_QUOTE_BYTES, DEAD_LETTER_REASON_CHARS } from './message-limits.js';
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
 * The dead-letter record for a message that cannot be processed: the original bytes, where they came
 * from, and a readable reason. Producing it (in the same transaction or batch as the results) is what
 * lets the consumer move on without losing anything. An original larger than DEAD_LETTER_QUOTE_BYTES
 * is quoted only in part (header HEADERS.truncated gives the original sizes) and referenced by its
 * topic, partition and offset, so that the dead letter always fits its topic.
 */
export function deadLetterMessage(source: SourceMessage, error: EnsembleError, service: string, nowMs: number): Message {
  const key = quote(source.key);
  const value = quote(source.value);
  let reason = error.message.length > DEAD_LETTER_REASON_CHARS ? `${error.message.slice(0, DEAD_LETTER_REASON_CHARS)}...` : error.message;
  const headers: Record<string, string> = { ...codecs.deadLetter.headers, [HEADERS.reason]: error.code };
  if (key !== source.key || value !== source.value) {
    headers[HEADERS.truncated] = `key=${source.key?.length ?? 0},value=${source.value?.length ?? 0}`;
    reason += ` (original of ${source.value?.length ?? 0} bytes quoted in part; read it at ${source.topic}/${source.partition}/${source.offset})`;
  }
  return {
    key,
    value: codecs.deadLetter.encode({
      sourceTopic: source.topic,
      sourcePartition: source.partition,
      sourceOffset: source.offset,
      key,
      value,
      reasonCode: error.code,
      reason,
      service,
      failedAtMs: nowMs,
    }),
    headers,
  };
}

function quote(bytes: Buffer | null): Buffer | null {
  return bytes !== null && bytes.length > DEAD_LETTER_QUOTE_BYTES ? bytes.subarray(0, DEAD_LETTER_QUOTE_BYTES) : bytes;
}
