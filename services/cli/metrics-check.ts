import type { Kafka } from 'kafkajs';
import { IDEMPOTENT_RETRY } from '../shared/kafka.js';
import { codecs } from '../shared/codec.js';
import type { EnsembleMetrics, Label } from '../shared/records.js';
import { startGroupAtEnd, waitFor } from './stream-client.js';

/**
 * The demo's view of the evaluator: labels for the replayed requests, then the first metrics
 * snapshot that has seen all of them, from the metrics topic, and the same figures from Prometheus.
 */
export async function sendLabels(kafka: Kafka, topic: string, labels: ReadonlyMap<string, string>): Promise<void> {
  const producer = kafka.producer({ idempotent: true, retry: IDEMPOTENT_RETRY });
  await producer.connect();
  try {
    const now = Date.now();
    const messages = [...labels].map(([requestId, label]) => {
      const record: Label = { requestId, label, value: null, observedAtMs: now };
      return { key: requestId, value: codecs.label.encode(record), headers: codecs.label.headers };
    });
    for (let i = 0; i < messages.length; i += 1000) await producer.send({ topic, messages: messages.slice(i, i + 1000), acks: -1 });
  } finally {
    await producer.disconnect();
  }
}

/** Positions a group at the end of the metrics topic and returns a reader of the snapshots after it. */
export async function snapshotsAfterNow(kafka: Kafka, topic: string, groupId: string) {
  await startGroupAtEnd(kafka, groupId, [topic]);
  const snapshots: EnsembleMetrics[] = [];
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 50 });
  await consumer.connect();
  await consumer.subscribe({ topic });
  await consumer.run({ eachMessage: async ({ message }) => void snapshots.push(codecs.ensembleMetrics.decode(message.value, message.headers)) });
  return {
    /** The first snapshot whose ensemble entry has `labelled` labels, or undefined after the timeout. */
    async waitForLabelled(labelled: number, timeoutMs: number): Promise<EnsembleMetrics | undefined> {
      const find = () => snapshots.find((s) => s.entries.some((e) => e.subject === 'ensemble' && e.labelled >= labelled));
      await waitFor(() => find() !== undefined, timeoutMs);
      return find();
    },
    stop: () => consumer.disconnect(),
  };
}

/** Reads one gauge per subject from a Prometheus text exposition. */
export async function scrapeGauge(url: string, name: string): Promise<Map<string, number>> {
  const text = await (await fetch(url)).text();
  const values = new Map<string, number>();
  const pattern = new RegExp(`^${name}\\{subject="([^"]+)"\\} (\\S+)$`, 'gm');
  for (const m of text.matchAll(pattern)) values.set(m[1] as string, Number(m[2]));
  return values;
}
