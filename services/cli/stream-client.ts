import type { Consumer, Kafka, Message, Producer } from 'kafkajs';
import { codecs } from '../shared/codec.js';
import { header } from '../shared/kafka.js';
import { HEADERS } from '../shared/topics.js';
import type { FusedPrediction, Prediction } from '../shared/records.js';

/**
 * The client side of a run: replays feature events at a fixed rate, and collects the fused results
 * (and, for per-model figures, the predictions) of exactly those requests.
 */
export interface ReplayRow {
  requestId: string;
  features: ArrayLike<number>;
}

export interface ReplayOptions {
  producer: Producer;
  topic: string;
  rows: readonly ReplayRow[];
  /** Requests per second; 0 sends as fast as the producer takes them. */
  rate: number;
  onProgress?: (sent: number) => void;
}

/** Produces one feature event per row, paced in 10 ms slices; returns the send time of each request. */
export async function replayFeatures({ producer, topic, rows, rate, onProgress }: ReplayOptions): Promise<Map<string, number>> {
  const sentAt = new Map<string, number>();
  const sliceMs = 10;
  const perSlice = rate > 0 ? Math.max(1, Math.round((rate * sliceMs) / 1000)) : 500;
  const start = Date.now();
  for (let i = 0, slice = 0; i < rows.length; i += perSlice, slice++) {
    if (rate > 0) {
      const due = start + (slice * perSlice * 1000) / rate;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    const now = Date.now();
    const messages: Message[] = rows.slice(i, i + perSlice).map((row) => {
      sentAt.set(row.requestId, now);
      return {
        key: row.requestId,
        value: codecs.featureEvent.encode({ requestId: row.requestId, createdAtMs: now, features: Array.from(row.features), deadlineMs: null }),
        headers: codecs.featureEvent.headers,
      };
    });
    await producer.send({ topic, messages, acks: -1 });
    onProgress?.(Math.min(i + perSlice, rows.length));
  }
  return sentAt;
}

export interface Collected {
  fused: Map<string, { result: FusedPrediction; receivedAtMs: number; copies: number }>;
  predictions: Map<string, Map<string, Prediction>>;
}

/** Positions a fresh consumer group at the current end of `topics`, so it sees only what comes next. */
export async function startGroupAtEnd(kafka: Kafka, groupId: string, topics: readonly string[]): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    for (const topic of topics) {
      // Right after the broker starts, the offsets topic may still be electing leaders: retry those.
      for (let attempt = 1; ; attempt++) {
        try {
          const offsets = await admin.fetchTopicOffsets(topic);
          await admin.setOffsets({ groupId, topic, partitions: offsets.map((o) => ({ partition: o.partition, offset: o.high })) });
          break;
        } catch (error) {
          if (attempt >= 20 || (error as { retriable?: boolean }).retriable !== true) throw error;
          await new Promise((r) => setTimeout(r, 250));
        }
      }
    }
  } finally {
    await admin.disconnect();
  }
}

/** Collects fused results (and predictions) whose request id starts with `runPrefix`. */
export async function collect(
  kafka: Kafka,
  topics: { fused: string; predictions?: string },
  runPrefix: string,
  groupId: string,
): Promise<{ collected: Collected; consumer: Consumer }> {
  await startGroupAtEnd(kafka, groupId, topics.predictions === undefined ? [topics.fused] : [topics.fused, topics.predictions]);
  const collected: Collected = { fused: new Map(), predictions: new Map() };
  const consumer = kafka.consumer({ groupId, readUncommitted: false, maxWaitTimeInMs: 20 });
  await consumer.connect();
  await consumer.subscribe({ topics: [topics.fused, ...(topics.predictions === undefined ? [] : [topics.predictions])] });
  await consumer.run({
    eachBatch: async ({ batch }) => {
      const receivedAtMs = Date.now();
      for (const m of batch.messages) {
        if (m.key === null || !m.key.toString().startsWith(runPrefix) || header(m.headers, HEADERS.control) !== undefined) continue;
        if (batch.topic === topics.fused) {
          const result = codecs.fusedPrediction.decode(m.value, m.headers);
          const seen = collected.fused.get(result.requestId);
          if (seen !== undefined) seen.copies++;
          else collected.fused.set(result.requestId, { result, receivedAtMs, copies: 1 });
        } else {
          const p = codecs.prediction.decode(m.value, m.headers);
          let byModel = collected.predictions.get(p.requestId);
          if (byModel === undefined) collected.predictions.set(p.requestId, (byModel = new Map()));
          byModel.set(p.modelId, p);
        }
      }
    },
  });
  return { collected, consumer };
}

/** Waits until `done()` holds, reporting progress once a second; false if `timeoutMs` passed first. */
export async function waitFor(done: () => boolean, timeoutMs: number, onTick?: () => void): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let lastTick = 0;
  while (!done()) {
    if (Date.now() > deadline) return false;
    if (onTick !== undefined && Date.now() - lastTick >= 1000) {
      lastTick = Date.now();
      onTick();
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

/** The q-quantile (0..1) of already sorted values, nearest rank. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}
