import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { readManifest } from '../services/cli/training.js';
import { exportOnnxModels } from '../services/cli/onnx-models.js';
import { loadDataset } from '../services/ml/dataset.js';
import { codecs } from '../services/shared/codec.js';
import { ConfigError, describeError } from '../services/shared/errors.js';
import { createKafka, ensureTopics } from '../services/shared/kafka.js';
import { createLogger } from '../services/shared/log.js';
import { readRuntimeConfig } from '../services/shared/runtime-config.js';
import { allTopics, withPrefix } from '../services/shared/topics.js';
import { BuiltinRunner } from '../services/worker/builtin-runner.js';
import type { ModelRunner } from '../services/worker/model-runner.js';
import { OnnxRunner } from '../services/worker/onnx-runner.js';
import { ModelWorker } from '../services/worker/worker.js';

/**
 * `node dist/bench/worker-throughput.js [--requests N] [--repeat N] [--families a,b]`: predictions
 * per second of one worker on the same trained letter artifact, built-in and as its ONNX export. A
 * features topic is filled first; the worker (in this process, on the real broker) then drains it
 * from the beginning and the time from its start to its last acknowledged prediction is measured.
 * Also the model call alone (no Kafka), as the worker makes it: one call per batch of `--batch`
 * rows (built-in models and onnxruntime alike). Medians of `--repeat` runs. Needs `train --onnx` first (run if missing)
 * and Kafka at KAFKA_BROKERS.
 */
const say = (line: string): void => void process.stdout.write(`${line}\n`);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { requests: { type: 'string' }, repeat: { type: 'string' }, families: { type: 'string' }, batch: { type: 'string' } },
  });
  const requests = Number(values.requests ?? 20_000);
  const repeat = Number(values.repeat ?? 3);
  const batch = Number(values.batch ?? 200);
  if (![requests, repeat, batch].every((n) => Number.isInteger(n) && n > 0)) throw new ConfigError('--requests, --repeat and --batch take positive integers');
  const families = (values.families ?? 'logistic-regression,decision-tree,random-forest,knn').split(',');
  const runtime = readRuntimeConfig();
  const logger = createLogger('bench', 'error');
  const manifest = await readManifest('letter');
  if (manifest === undefined) throw new ConfigError('no trained letter models: run `train --onnx` first');
  const onnx = await exportOnnxModels(manifest.models);
  const data = await loadDataset('letter');
  const rows = manifest.split.test.map((i) => Array.from(data.X[i]!));

  const kafka = createKafka({ brokers: runtime.kafkaBrokers, clientId: 'bench-worker-throughput', logger });
  const topics = withPrefix(`bench-wt-${Date.now().toString(36)}-`);
  const admin = kafka.admin();
  await admin.connect();
  await ensureTopics(admin, allTopics(topics), runtime.partitions);
  const producer = kafka.producer({ idempotent: true });
  await producer.connect();
  for (let i = 0; i < requests; i += 1000) {
    const messages = Array.from({ length: Math.min(1000, requests - i) }, (_, k) => {
      const requestId = `wt-${i + k}`;
      const value = codecs.featureEvent.encode({ requestId, createdAtMs: Date.now(), features: rows[(i + k) % rows.length]!, deadlineMs: null });
      return { key: requestId, value, headers: codecs.featureEvent.headers };
    });
    await producer.send({ topic: topics.features, messages, acks: -1 });
  }
  await producer.disconnect();
  say(
    `worker throughput: ${requests} letter feature events on ${runtime.partitions} partitions, ${repeat} runs each, medians; load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );

  const lines: string[] = [];
  lines.push('| model | runner | predictions/s through Kafka | model call alone, rows/s | us per row |', '|---|---|---|---|---|');
  for (const family of families) {
    const m = manifest.models.find((x) => x.family === family);
    if (m === undefined) throw new ConfigError(`no ${family} model`);
    // k-NN has no ONNX export (train --onnx says why): built-in only.
    const onnxPath = onnx.get(m.modelId);
    for (const kind of onnxPath === undefined ? (['built-in'] as const) : (['built-in', 'onnx'] as const)) {
      const load = (): Promise<ModelRunner> => (kind === 'onnx' ? OnnxRunner.load(onnxPath!) : BuiltinRunner.load(m.artifactPath));
      const throughputs: number[] = [];
      const callRates: number[] = [];
      for (let r = 0; r < repeat; r++) {
        const runner = await load();
        // The model call alone, as the worker makes it.
        const started = performance.now();
        for (let i = 0; i < rows.length; i += batch) await runner.predictBatch!(rows.slice(i, i + batch));
        callRates.push(rows.length / ((performance.now() - started) / 1000));
        // Through Kafka: a fresh group drains the filled topic.
        const worker = new ModelWorker({ kafka, topics, runner, logger, groupId: `${topics.features}-${family}-${kind}-${r}`, fetch: runtime.fetch });
        const t0 = performance.now();
        await worker.start();
        while (worker.stats.predictions + worker.stats.errors < requests) await new Promise((resolve) => setTimeout(resolve, 5));
        const seconds = (performance.now() - t0) / 1000;
        await worker.stop();
        if (worker.stats.errors > 0) throw new Error(`${family} ${kind}: ${worker.stats.errors} errors`);
        throughputs.push(requests / seconds);
      }
      const callRate = median(callRates);
      const line = `| ${m.modelId} | ${kind} | ${Math.round(median(throughputs)).toLocaleString('en')} (${throughputs.map((t) => Math.round(t)).join(', ')}) | ${Math.round(callRate).toLocaleString('en')} | ${(1e6 / callRate).toFixed(1)} |`;
      say(line);
      lines.push(line);
    }
  }
  await admin.deleteTopics({ topics: allTopics(topics) }).catch(() => undefined);
  await admin.disconnect();
  say(`\n${lines.join('\n')}`);
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`worker-throughput: ${describeError(error)}\n`);
    process.exit(1);
  },
);
