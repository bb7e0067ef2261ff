import type { Consumer, Kafka } from 'kafkajs';
import { startGroupAtEnd } from '../services/cli/stream-client.js';
import { codecs } from '../services/shared/codec.js';
import { header } from '../services/shared/kafka.js';
import type { FusionStatus } from '../services/shared/records.js';
import { HEADERS } from '../services/shared/topics.js';

/** One fused result as the client saw it; all times are this machine's wall clock, ms. */
export interface FusedSeen {
  requestCreatedAtMs: number;
  fusedAtMs: number;
  /** When the aggregator's producer stamped the message. */
  producedAtMs: number;
  receivedAtMs: number;
  status: FusionStatus;
  copies: number;
}

/** One model's prediction for a request, read back from the predictions topic after a phase. */
export interface PredictionSeen {
  receivedAtMs: number;
  producedAtMs: number;
}

export type PartitionOffsets = Map<number, bigint>;

/**
 * Consumes the fused topic (read committed, like any client) for the whole run and records every
 * result with the time it arrived. Results are timestamped per fetched batch, as soon as it lands.
 */
export class FusedCollector {
  readonly seen = new Map<string, FusedSeen>();
  private prefix = '\u0000';
  private distinct = 0;

  private constructor(private readonly consumer: Consumer) {}

  static async start(kafka: Kafka, topic: string, groupId: string): Promise<FusedCollector> {
    await startGroupAtEnd(kafka, groupId, [topic]);
    const consumer = kafka.consumer({ groupId, readUncommitted: false, maxWaitTimeInMs: 20 });
    const collector = new FusedCollector(consumer);
    await consumer.connect();
    await consumer.subscribe({ topic });
    await consumer.run({
      eachBatch: async ({ batch }) => {
        const receivedAtMs = Date.now();
        for (const m of batch.messages) {
          if (m.key === null) continue;
          const requestId = m.key.toString();
          const seen = collector.seen.get(requestId);
          if (seen !== undefined) {
            seen.copies++;
            continue;
          }
          const f = codecs.fusedPrediction.decode(m.value, m.headers);
          collector.seen.set(requestId, {
            requestCreatedAtMs: f.requestCreatedAtMs,
            fusedAtMs: f.fusedAtMs,
            producedAtMs: Number(m.timestamp),
            receivedAtMs,
            status: f.status,
            copies: 1,
          });
          if (requestId.startsWith(collector.prefix)) collector.distinct++;
        }
      },
    });
    return collector;
  }

  /** Starts counting the distinct results of requests whose id starts with `prefix`. */
  expect(prefix: string): void {
    this.prefix = prefix;
    this.distinct = 0;
  }

  /** Distinct results of the current prefix so far. */
  get count(): number {
    return this.distinct;
  }

  async stop(): Promise<void> {
    await this.consumer.disconnect();
  }
}

export { endOffsets } from '../services/shared/topic-range.js';

/** Messages between two offset readings, summed over partitions. */
export function messagesBetween(from: PartitionOffsets, to: PartitionOffsets): number {
  let n = 0n;
  for (const [partition, end] of to) n += end - (from.get(partition) ?? 0n);
  return Number(n);
}

/**
 * Reads the predictions written between two offset readings, after the phase, so that reading them
 * never competes with the pipeline while it is measured. Returns request id -> model id -> timing.
 */
export async function readPredictions(
  kafka: Kafka,
  topic: string,
  from: PartitionOffsets,
  to: PartitionOffsets,
  groupId: string,
  /** Filled with request id -> Kafka timestamp of its first deadline record, when given. */
  deadlineRecords?: Map<string, number>,
): Promise<Map<string, Map<string, PredictionSeen>>> {
  const out = new Map<string, Map<string, PredictionSeen>>();
  const pending = new Set([...to].filter(([p, end]) => end > (from.get(p) ?? 0n)).map(([p]) => p));
  if (pending.size === 0) return out;
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.setOffsets({ groupId, topic, partitions: [...from].map(([partition, offset]) => ({ partition, offset: offset.toString() })) });
  } finally {
    await admin.disconnect();
  }
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topic });
  let done: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (done = resolve));
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      const end = to.get(batch.partition) ?? 0n;
      for (const m of batch.messages) {
        if (BigInt(m.offset) >= end) break;
        if (m.key !== null && header(m.headers, HEADERS.control) !== undefined) {
          const id = m.key.toString();
          if (!deadlineRecords?.has(id)) deadlineRecords?.set(id, Number(m.timestamp));
          continue;
        }
        if (m.key === null || m.value === null) continue;
        const p = codecs.prediction.decode(m.value, m.headers);
        let byModel = out.get(p.requestId);
        if (byModel === undefined) out.set(p.requestId, (byModel = new Map()));
        byModel.set(p.modelId, { receivedAtMs: p.receivedAtMs, producedAtMs: Number(m.timestamp) });
      }
      if (BigInt(batch.lastOffset()) + 1n >= end) pending.delete(batch.partition);
      if (pending.size === 0) done();
    },
  });
  const timeout = setTimeout(done, 60_000);
  await finished;
  clearTimeout(timeout);
  await consumer.disconnect();
  return out;
}
