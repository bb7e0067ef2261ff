import type { EachBatchPayload, KafkaMessage } from 'kafkajs';
import { describeError, EnsembleError, InvalidMessageError } from './errors.js';
import type { Logger } from './log.js';

/**
 * Keeps one message from stopping a partition. A batch whose handler fails with an error that may be
 * the messages' fault (see `blamesTheMessages`) is not thrown back to kafkajs, which would retry it
 * forever or give the consumer up; its offsets are left unresolved, so kafkajs fetches the same
 * messages again, and the guard hands them over one at a time up to the end of the failed batch.
 * A message that fails again alone has crashed its consumer twice: on its next delivery it is marked
 * poison, the handler's ingress (`refusePoison`) dead-letters it with reason POISON, and its offset
 * is committed with the batch. Errors that say nothing about the messages (Kafka or Redis unavailable,
 * a fenced producer, a rebalance) are rethrown as before.
 *
 * Consumers using it run with `eachBatchAutoResolve: false`: the guard resolves what was handled.
 */
export class PoisonGuard {
  private readonly suspects = new Map<string, Suspect>();

  constructor(
    private readonly logger: Logger,
    private readonly service: string,
  ) {}

  /** `handle` may answer 'retry': the batch failed for reasons of its own and is left unresolved, to be read again. */
  async run(payload: EachBatchPayload, handle: (payload: EachBatchPayload) => Promise<unknown>): Promise<void> {
    const { batch } = payload;
    const first = batch.messages[0];
    if (first === undefined || payload.isStale()) return;
    const where = `${batch.topic}:${batch.partition}`;
    const firstOffset = BigInt(first.offset);
    const suspect = this.suspectAt(where, firstOffset);
    let handed = batch.messages;
    if (suspect !== undefined) {
      handed = [first];
      if (suspect.failures > 1) {
        // Even its dead letter failed: say so loudly and move on rather than stop the partition.
        this.logger.error('message skipped: it failed its consumer and so did its dead letter', {
          service: this.service,
          topic: batch.topic,
          partition: batch.partition,
          offset: first.offset,
          error: suspect.lastError,
        });
        this.advance(where, suspect);
        payload.resolveOffset(first.offset);
        return;
      }
      if (suspect.failures === 1) poisoned.set(first, `failed its consumer twice, the second time alone: ${suspect.lastError}`);
      this.suspects.set(where, suspect);
    }
    try {
      const outcome = await handle(
        handed === batch.messages ? payload : { ...payload, batch: Object.create(batch, { messages: { value: handed } }) as typeof batch },
      );
      if (outcome === 'retry') return;
    } catch (error) {
      if (!blamesTheMessages(error)) throw error;
      this.failed(batch, handed, suspect, describeError(error).slice(0, 500));
      // Unresolved: kafkajs fetches from the same offset again.
      return;
    }
    if (suspect !== undefined) this.advance(where, suspect);
    payload.resolveOffset((handed[handed.length - 1] as KafkaMessage).offset);
  }

  /** The partition's suspect for a batch starting at `firstOffset`, if it still covers it. */
  private suspectAt(where: string, firstOffset: bigint): Suspect | undefined {
    let suspect = this.suspects.get(where);
    if (suspect !== undefined && firstOffset > suspect.until) {
      this.suspects.delete(where);
      suspect = undefined;
    }
    if (suspect !== undefined && suspect.offset !== firstOffset) suspect = { ...suspect, offset: firstOffset, failures: 0 };
    return suspect;
  }

  /** A batch (or its suspect message alone) failed because of its messages: retry them one at a time. */
  private failed(batch: EachBatchPayload['batch'], handed: KafkaMessage[], suspect: Suspect | undefined, lastError: string): void {
    const where = `${batch.topic}:${batch.partition}`;
    const first = handed[0] as KafkaMessage;
    const last = handed[handed.length - 1] as KafkaMessage;
    const place = { service: this.service, topic: batch.topic, partition: batch.partition };
    if (suspect === undefined) {
      this.suspects.set(where, { offset: BigInt(first.offset), until: BigInt(last.offset), failures: 0, lastError });
      this.logger.warn('batch failed; its messages are retried one at a time', { ...place, from: first.offset, to: last.offset, error: lastError });
    } else {
      this.suspects.set(where, { ...suspect, failures: suspect.failures + 1, lastError });
      this.logger.warn('message failed alone', { ...place, offset: first.offset, failures: suspect.failures + 2, error: lastError });
    }
  }

  private advance(where: string, suspect: Suspect): void {
    const next = suspect.offset + 1n;
    if (next > suspect.until) this.suspects.delete(where);
    else this.suspects.set(where, { ...suspect, offset: next, failures: 0 });
  }
}

interface Suspect {
  /** The message on trial, handed over alone. */
  offset: bigint;
  /** The last offset of the batch that failed: messages up to it are handed over one at a time. */
  until: bigint;
  /** How often the message on trial failed alone. */
  failures: number;
  lastError: string;
}

const poisoned = new WeakMap<KafkaMessage, string>();

/** Throws POISON for a message the guard found to crash its consumer; the first check of every ingress. */
export function refusePoison(message: KafkaMessage): void {
  const why = poisoned.get(message);
  if (why !== undefined) throw new InvalidMessageError('POISON', why);
}

/** Kafka errors that a message causes: it cannot be written anywhere as it is. */
const MESSAGE_FAULTS = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE', 'INVALID_RECORD', 'CORRUPT_MESSAGE']);
/** Connection-level failures of the Redis client (ioredis) and sockets. */
const TRANSIENT_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * Whether a failed batch may be its messages' fault. Retriable errors of ours, Kafka's own errors
 * (except a record it refuses) and connection failures are not: they are retried as they are.
 * Anything else (a bug met on odd data, a script error, a record the broker refuses) is.
 */
export function blamesTheMessages(error: unknown): boolean {
  let cause = error;
  while (cause instanceof Error && cause.name.startsWith('KafkaJS') && cause.cause !== undefined) cause = cause.cause;
  if (!(cause instanceof Error)) return true;
  if (cause instanceof EnsembleError) return !cause.retriable;
  if (cause.name.startsWith('KafkaJS')) return MESSAGE_FAULTS.has(String((cause as { type?: unknown }).type));
  const code = (cause as { code?: unknown }).code;
  if (typeof code === 'string' && TRANSIENT_CODES.has(code)) return false;
  if (cause.name === 'MaxRetriesPerRequestError' || /Connection is closed|Stream isn't writeable/.test(cause.message)) return false;
  return true;
}
