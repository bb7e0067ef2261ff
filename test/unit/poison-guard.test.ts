import type { EachBatchPayload, KafkaMessage } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { codecs } from '../../services/shared/codec.js';
import { deadLetterMessage } from '../../services/shared/dead-letters.js';
import { InfrastructureError, InvalidMessageError } from '../../services/shared/errors.js';
import { createLogger } from '../../services/shared/log.js';
import { DEAD_LETTER_QUOTE_BYTES } from '../../services/shared/message-limits.js';
import { blamesTheMessages, PoisonGuard, refusePoison } from '../../services/shared/poison-guard.js';
import { HEADERS } from '../../services/shared/topics.js';

const logger = createLogger('test', 'silent');

/**
 * A partition log and the fetch loop kafkajs runs over it: each delivery is a batch from the
 * resolved position to the end, redelivered from the same place when nothing was resolved.
 */
function partitionLog(size: number) {
  const log = Array.from({ length: size }, (_, i) => ({ offset: String(i), key: Buffer.from(`k${i}`), value: Buffer.from(`v${i}`) }) as KafkaMessage);
  let position = 0;
  const deliver = (guard: PoisonGuard, handle: (messages: KafkaMessage[]) => Promise<void>) => {
    const payload = {
      batch: { topic: 't', partition: 0, messages: log.slice(position) },
      resolveOffset: (offset: string) => {
        position = Number(offset) + 1;
      },
      isStale: () => false,
    } as unknown as EachBatchPayload;
    return guard.run(payload, (p) => handle(p.batch.messages));
  };
  return { deliver, position: () => position };
}

describe('the poison guard', () => {
  it('retries a failed batch one message at a time, and dead-letters the message that fails again alone', async () => {
    const guard = new PoisonGuard(logger, 'test');
    const { deliver, position } = partitionLog(6);
    const handled: string[][] = [];
    const poison: string[] = [];
    // Message 3 breaks its handler (a bug met on odd data), wherever it is in a batch.
    const handle = async (messages: KafkaMessage[]) => {
      handled.push(messages.map((m) => m.offset));
      for (const m of messages) {
        try {
          refusePoison(m);
        } catch (error) {
          if (error instanceof InvalidMessageError && error.code === 'POISON') {
            poison.push(`${m.offset}: ${error.message}`);
            continue;
          }
          throw error;
        }
        if (m.offset === '3') throw new TypeError('cannot read properties of undefined');
      }
    };
    for (let i = 0; i < 20 && position() < 6; i++) await deliver(guard, handle);
    expect(position()).toBe(6);
    expect(handled).toEqual([['0', '1', '2', '3', '4', '5'], ['0'], ['1'], ['2'], ['3'], ['3'], ['4'], ['5']]);
    expect(poison).toEqual(['3: failed its consumer twice, the second time alone: cannot read properties of undefined']);
  });

  it('rethrows errors that say nothing about the messages, and counts nothing for them', async () => {
    const guard = new PoisonGuard(logger, 'test');
    const { deliver, position } = partitionLog(2);
    await expect(deliver(guard, () => Promise.reject(new InfrastructureError('redis down')))).rejects.toThrow('redis down');
    const seen: string[][] = [];
    await deliver(guard, async (messages) => {
      seen.push(messages.map((m) => m.offset));
    });
    expect(seen).toEqual([['0', '1']]);
    expect(position()).toBe(2);
  });

  it('blames the messages for bugs and refused records, not for outages, fencing or rebalances', () => {
    const kafkaError = (type: string, retriable: boolean) => Object.assign(new Error(type), { name: 'KafkaJSProtocolError', type, retriable });
    expect(blamesTheMessages(new TypeError('x'))).toBe(true);
    expect(blamesTheMessages(kafkaError('MESSAGE_TOO_LARGE', false))).toBe(true);
    expect(
      blamesTheMessages(Object.assign(new Error('retries'), { name: 'KafkaJSNumberOfRetriesExceeded', cause: kafkaError('MESSAGE_TOO_LARGE', false) })),
    ).toBe(true);
    expect(blamesTheMessages(kafkaError('PRODUCER_FENCED', false))).toBe(false);
    expect(blamesTheMessages(kafkaError('REBALANCE_IN_PROGRESS', true))).toBe(false);
    expect(blamesTheMessages(new InfrastructureError('down'))).toBe(false);
    expect(blamesTheMessages(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toBe(false);
    expect(blamesTheMessages(new Error('Connection is closed.'))).toBe(false);
  });
});

describe('dead letters', () => {
  it('quote at most DEAD_LETTER_QUOTE_BYTES of the original and say where the rest is', () => {
    const value = Buffer.alloc(1_048_378, 7);
    const dead = deadLetterMessage(
      { topic: 'predictions', partition: 1, offset: '42', key: Buffer.from('r-1'), value },
      new InvalidMessageError('OVERSIZED', 'too big'),
      'aggregator',
      1,
    );
    expect((dead.value as Buffer).length).toBeLessThan(DEAD_LETTER_QUOTE_BYTES + 1024);
    const letter = codecs.deadLetter.decode(dead.value as Buffer, dead.headers as never);
    expect(letter.value).toEqual(value.subarray(0, DEAD_LETTER_QUOTE_BYTES));
    expect(letter.reason).toContain('predictions/1/42');
    expect((dead.headers as Record<string, string>)[HEADERS.truncated]).toBe('key=3,value=1048378');
    const small = deadLetterMessage(
      { topic: 't', partition: 0, offset: '1', key: null, value: Buffer.from('x') },
      new InvalidMessageError('UNDECODABLE', 'bad'),
      's',
      1,
    );
    expect((small.headers as Record<string, string>)[HEADERS.truncated]).toBeUndefined();
  });
});
