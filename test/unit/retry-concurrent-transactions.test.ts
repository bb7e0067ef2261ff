import { describe, expect, it } from 'vitest';
import { isConcurrentTransactions, retryConcurrentTransactions } from '../../services/shared/kafka.js';

const concurrent = () =>
  Object.assign(new Error('The producer attempted to update a transaction while another concurrent operation on the same transaction was ongoing'), {
    type: 'CONCURRENT_TRANSACTIONS',
  });

describe('retryConcurrentTransactions', () => {
  it('calls again while the coordinator answers CONCURRENT_TRANSACTIONS, backing off', async () => {
    const waits: number[] = [];
    let calls = 0;
    const result = await retryConcurrentTransactions(
      async () => {
        calls++;
        if (calls < 4) throw concurrent();
        return 'added';
      },
      { initialMs: 5, maxMs: 12 },
      async (ms) => void waits.push(ms),
    );
    expect(result).toBe('added');
    expect(calls).toBe(4);
    expect(waits).toEqual([5, 10, 12]);
  });

  it('throws any other error at once, and CONCURRENT_TRANSACTIONS once the time is up', async () => {
    let calls = 0;
    const fenced = Object.assign(new Error('fenced'), { type: 'PRODUCER_FENCED' });
    await expect(
      retryConcurrentTransactions(
        async () => {
          calls++;
          throw fenced;
        },
        {},
        async () => undefined,
      ),
    ).rejects.toBe(fenced);
    expect(calls).toBe(1);
    const waits: number[] = [];
    await expect(
      retryConcurrentTransactions(
        async () => {
          throw concurrent();
        },
        { initialMs: 10, maxMs: 10, timeoutMs: 35 },
        async (ms) => void waits.push(ms),
      ),
    ).rejects.toThrow(/concurrent operation/);
    expect(waits).toEqual([10, 10, 10]);
  });

  it('recognises the answer on the error or on its cause', () => {
    expect(isConcurrentTransactions(concurrent())).toBe(true);
    expect(isConcurrentTransactions(Object.assign(new Error('wrapped'), { cause: concurrent() }))).toBe(true);
    expect(isConcurrentTransactions(new Error('other'))).toBe(false);
    expect(isConcurrentTransactions(undefined)).toBe(false);
  });
});
