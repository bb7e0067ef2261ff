import { loadDataset } from '../services/ml/dataset.js';
import { createKafka, IDEMPOTENT_RETRY } from '../services/shared/kafka.js';
import { createLogger } from '../services/shared/log.js';
import { replayFeatures, type ReplayRow } from '../services/cli/stream-client.js';
import type { LoadSent, RunLoad } from './load-driver.js';

/**
 * The load generator, a process of its own so that producing never shares an event loop with the
 * collector that timestamps results. Driven over IPC by the bench: one `run` message per phase,
 * answered by `sent`. Features are letter rows, cycled; request ids are `<prefix><n>`.
 */
async function main(): Promise<void> {
  const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
  const kafka = createKafka({ brokers, clientId: 'ensemble-stream-bench-load', logger: createLogger('bench-load', 'warn') });
  const producer = kafka.producer({ idempotent: true, retry: IDEMPOTENT_RETRY });
  await producer.connect();
  const data = await loadDataset('letter');
  const send = (message: LoadSent) => process.send?.(message);
  process.on('disconnect', () => void producer.disconnect().finally(() => process.exit(0)));
  process.on('message', (message: RunLoad) => {
    const rows: ReplayRow[] = Array.from({ length: message.count }, (_, i) => ({
      requestId: `${message.prefix}${i}`,
      features: data.X[i % data.X.length] as Float64Array,
    }));
    const firstSendMs = Date.now();
    replayFeatures({ producer, topic: message.topic, rows, rate: message.rate }).then(
      () => send({ kind: 'sent', count: rows.length, firstSendMs, lastSendMs: Date.now() }),
      (error: unknown) => {
        process.stderr.write(`load generator: ${String(error)}\n`);
        process.exit(1);
      },
    );
  });
  process.send?.({ kind: 'ready' });
}

void main();
