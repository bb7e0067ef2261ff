import type { Kafka } from 'kafkajs';
import type { KafkaMessage } from 'kafkajs';
import { codecs } from '../shared/codec.js';
import type { Logger } from '../shared/log.js';
import type { Prediction } from '../shared/records.js';
import type { Topics } from '../shared/topics.js';
import { endOffsets, offsetsAtTime, readRanges } from '../shared/topic-range.js';
import type { JoinStore, RestoredRequest } from './join-store.js';

export interface StateRestoreOptions {
  kafka: Kafka;
  joinStore: JoinStore;
  topics: Topics;
  groupId: string;
  /** The config's deadline, for predictions whose request sets none. */
  deadlineMs: number;
  /** How far back in Kafka the open joins are looked for, ms. */
  horizonMs: number;
  /**
   * The aggregator's own ingress: a message it refuses now was dead-lettered when it was consumed,
   * so it must not join the rebuilt state either. Throws for such a message.
   */
  accept: (message: KafkaMessage) => Prediction;
  logger: Logger;
}

export interface RestoreSummary {
  partition: number;
  open: number;
  fused: number;
  predictionsRead: number;
  ms: number;
}

const CHUNK = 500;

/** The group's committed offset of a predictions partition, if it ever committed one. */
async function committedOffset(o: StateRestoreOptions, partition: number): Promise<bigint | undefined> {
  const admin = o.kafka.admin();
  await admin.connect();
  try {
    const [topic] = await admin.fetchOffsets({ groupId: o.groupId, topics: [o.topics.predictions] });
    const offset = topic?.partitions.find((p) => p.partition === partition)?.offset ?? '-1';
    return BigInt(offset) < 0n ? undefined : BigInt(offset);
  } finally {
    await admin.disconnect();
  }
}

/**
 * Rebuilds one predictions partition's join state from Kafka, as Kafka Streams restores a store
 * from its changelog: Redis is a cache of the log. The open joins are the requests whose predictions
 * were consumed (offsets before the group's committed one) within the horizon and that have no
 * committed fused result; the fused-predictions topic over the same horizon gives the "already
 * fused" markers. The state is written before the epoch, so the join never sees half of it.
 *
 * Limit: a request that was still open after more than `horizonMs` (an aggregator outage at the
 * same time as the loss) is not found; its later predictions are dead-lettered as EXPIRED.
 */
export async function restorePartition(o: StateRestoreOptions, partition: number, upTo: bigint): Promise<RestoreSummary> {
  const started = Date.now();
  const floor = started - o.horizonMs;
  const committed = (await committedOffset(o, partition)) === undefined ? undefined : upTo;
  if (committed === undefined) {
    // Nothing was ever consumed here by this group: nothing to rebuild, nothing to forget.
    await o.joinStore.restore(partition, { fused: [], open: [] }, true, 0, started);
    return { partition, open: 0, fused: 0, predictionsRead: 0, ms: Date.now() - started };
  }
  const [predictionsFrom, fusedFrom] = await Promise.all([offsetsAtTime(o.kafka, o.topics.predictions, floor), offsetsAtTime(o.kafka, o.topics.fused, floor)]);
  const requests = new Map<string, RestoredRequest>();
  const fusedIds = new Set<string>();
  const fused: { requestId: string; requestCreatedAtMs: number }[] = [];
  let predictionsRead = 0;
  const fusedEnds = await endOffsets(o.kafka, o.topics.fused);
  const from = predictionsFrom.get(partition) ?? committed;
  // Both topics are read back at once: a restore holds its partition still.
  await Promise.all([
    readRanges(o.kafka, o.topics.predictions, new Map([[partition, { from, to: committed }]]), (_, m) => {
      let p: Prediction;
      try {
        p = o.accept(m);
      } catch {
        return; // a deadline record, or a message dead-lettered when it was consumed
      }
      predictionsRead++;
      let r = requests.get(p.requestId);
      if (r === undefined) {
        r = {
          requestId: p.requestId,
          requestCreatedAtMs: p.requestCreatedAtMs,
          deadlineAtMs: p.requestCreatedAtMs + (p.deadlineMs ?? o.deadlineMs),
          predictions: [],
        };
        requests.set(p.requestId, r);
      }
      if (!r.predictions.some((x) => x.modelId === p.modelId)) r.predictions.push({ modelId: p.modelId, ok: p.status === 'OK', payload: m.value as Buffer });
    }),
    readRanges(o.kafka, o.topics.fused, new Map([...fusedFrom].map(([p, f]) => [p, { from: f, to: fusedEnds.get(p) ?? f }])), (_, m) => {
      if (m.value === null) return;
      const f = codecs.fusedPrediction.decode(m.value, m.headers);
      fusedIds.add(f.requestId);
      fused.push({ requestId: f.requestId, requestCreatedAtMs: f.requestCreatedAtMs });
    }),
  ]);
  for (const id of fusedIds) requests.delete(id);

  const open = [...requests.values()];
  for (let i = 0; i < Math.max(fused.length, open.length); i += CHUNK) {
    await o.joinStore.restore(partition, { fused: fused.slice(i, i + CHUNK), open: open.slice(i, i + CHUNK) }, false, floor, started);
  }
  await o.joinStore.restore(partition, { fused: [], open: [] }, true, floor, started);
  const summary = { partition, open: open.length, fused: fused.length, predictionsRead, ms: Date.now() - started };
  o.logger.warn('join state rebuilt from Kafka', { ...summary });
  return summary;
}
