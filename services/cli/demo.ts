import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadDataset, type DatasetName } from '../ml/dataset.js';
import { argmax, classificationMetrics } from '../ml/metrics.js';
import { createKafka } from '../shared/kafka.js';
import { createLogger } from '../shared/log.js';
import type { RuntimeConfig } from '../shared/runtime-config.js';
import { GROUPS, topicsToEnv } from '../shared/topics.js';
import { type AggregatorConfig, loadAggregatorConfig } from '../aggregator/config.js';
import { infraDown, infraUp } from './local-infra.js';
import { spawnService, type ServiceProcess } from './processes.js';
import { collect, quantile, replayFeatures, waitFor } from './stream-client.js';
import { artifactsDir, defaultAggregatorConfig, type Manifest, readManifest, train } from './training.js';
import { formatTable } from './table.js';

export interface DemoOptions {
  dataset: DatasetName;
  /** Feature events per second. */
  rate: number;
  /** Replay at most this many test rows (0: all). */
  limit: number;
  /** Leave Kafka and Redis running afterwards. */
  keepInfra: boolean;
  /** Aggregator config to run with; default: the selected one if present, else equal-weight soft voting. */
  configPath?: string;
}

/**
 * The main job, end to end on real Kafka and Redis: start the infra, train (or reuse) the models,
 * start one worker per model and an aggregator, replay the held-out test split as feature events,
 * and report each model's and the fused accuracy on that stream. Stops what it started.
 */
export async function runDemo(runtime: RuntimeConfig, o: DemoOptions): Promise<void> {
  const say = (line: string) => process.stdout.write(`${line}\n`);
  const logger = createLogger('demo', runtime.logLevel === 'info' ? 'warn' : runtime.logLevel);
  say('ensemble-stream demo');
  say('1/5 starting Kafka and Redis ...');
  const started = await infraUp(runtime, logger);
  const services: ServiceProcess[] = [];
  try {
    say('2/5 models ...');
    let manifest: Manifest | undefined = await readManifest(o.dataset);
    if (manifest === undefined) manifest = await train(o.dataset, 42, say);
    else say(`  reusing ${manifest.models.length} trained models from ${artifactsDir(o.dataset)}`);

    const configPath = o.configPath ?? join(artifactsDir(o.dataset), 'aggregator.json');
    let config: AggregatorConfig;
    if (o.configPath !== undefined) config = loadAggregatorConfig(configPath);
    else await writeFile(configPath, `${JSON.stringify((config = defaultAggregatorConfig(manifest)), null, 2)}\n`);

    say(`3/5 starting ${manifest.models.length} model workers and the aggregator (${config.strategy}) ...`);
    const env = { ...process.env, ...topicsToEnv(runtime.topics), KAFKA_BROKERS: runtime.kafkaBrokers.join(','), REDIS_URL: runtime.redisUrl };
    for (const m of manifest.models) services.push(spawnService(`worker-${m.modelId}`, ['worker', '--artifact', m.artifactPath], env));
    services.push(spawnService('aggregator', ['aggregator', '--config', configPath], env));
    const kafka = createKafka({ brokers: runtime.kafkaBrokers, clientId: 'ensemble-stream-demo', logger });
    await waitForGroups(kafka, [...manifest.models.map((m) => GROUPS.worker(m.modelId)), GROUPS.aggregator], services);

    const data = await loadDataset(o.dataset);
    const runId = randomBytes(3).toString('hex');
    const testRows = o.limit > 0 ? manifest.split.test.slice(0, o.limit) : manifest.split.test;
    const rows = testRows.map((i) => ({ requestId: `demo-${runId}-${i}`, features: data.X[i] as Float64Array }));
    const truth = new Map(testRows.map((i) => [`demo-${runId}-${i}`, data.y[i] as number]));

    const { collected, consumer } = await collect(kafka, { fused: runtime.topics.fused, predictions: runtime.topics.predictions }, `demo-${runId}-`, `ensemble-stream.demo.${runId}`);
    const producer = kafka.producer({ idempotent: true });
    await producer.connect();
    say(`4/5 replaying ${rows.length} held-out ${o.dataset} requests at ${o.rate > 0 ? `${o.rate}/s` : 'full speed'} ...`);
    const t0 = Date.now();
    let sent = 0;
    const progress = () => say(`  sent ${sent}/${rows.length}  fused ${collected.fused.size}/${rows.length}`);
    const replay = replayFeatures({ producer, topic: runtime.topics.features, rows, rate: o.rate, onProgress: (n) => (sent = n) });
    const complete = await waitFor(() => collected.fused.size >= rows.length, 120_000 + (o.rate > 0 ? (rows.length / o.rate) * 1000 : 0), progress);
    await replay;
    const elapsedS = (Date.now() - t0) / 1000;
    // Give duplicates, if there were any, a moment to show up before counting.
    await new Promise((r) => setTimeout(r, 1000));
    await producer.disconnect();
    await consumer.disconnect();

    say('5/5 report');
    say(report(manifest, collected, truth, rows.length, elapsedS, complete));
  } finally {
    await Promise.all(services.map((s) => s.stop()));
    if (!o.keepInfra) infraDown(started);
  }
}

async function waitForGroups(kafka: ReturnType<typeof createKafka>, groups: string[], services: ServiceProcess[]): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const dead = services.find((s) => s.child.exitCode !== null);
      if (dead !== undefined) throw new Error(`${dead.name} exited (code ${dead.child.exitCode}); see ${dead.logFile}`);
      const { groups: described } = await admin.describeGroups(groups);
      if (described.every((g) => g.state === 'Stable' && g.members.length > 0)) return;
      if (Date.now() > deadline) throw new Error(`consumer groups not ready after 60 s: ${described.map((g) => `${g.groupId}=${g.state}`).join(', ')}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    await admin.disconnect();
  }
}

function report(manifest: Manifest, c: Awaited<ReturnType<typeof collect>>['collected'], truth: Map<string, number>, sent: number, elapsedS: number, complete: boolean): string {
  const n = manifest.classes.length;
  const lines: string[] = [];
  const rowsOut: string[][] = [];
  for (const m of manifest.models) {
    const yTrue: number[] = [];
    const yPred: number[] = [];
    for (const [id, byModel] of c.predictions) {
      const p = byModel.get(m.modelId);
      if (p?.status !== 'OK' || p.probabilities === null) continue;
      yTrue.push(truth.get(id) as number);
      yPred.push(argmax(p.probabilities));
    }
    const metrics = classificationMetrics(yTrue, yPred, n);
    const pickup = [...c.predictions.values()].map((b) => b.get(m.modelId)).filter((p) => p !== undefined).map((p) => p.receivedAtMs - p.requestCreatedAtMs).sort((a, b) => a - b);
    rowsOut.push([m.modelId, String(yTrue.length), metrics.accuracy.toFixed(4), metrics.macroF1.toFixed(4), String(quantile(pickup, 0.5))]);
  }
  const yTrue: number[] = [];
  const yPred: number[] = [];
  let partial = 0;
  let insufficient = 0;
  let duplicates = 0;
  const latencies: number[] = [];
  for (const [id, f] of c.fused) {
    duplicates += f.copies - 1;
    if (f.result.status === 'PARTIAL') partial++;
    latencies.push(f.receivedAtMs - f.result.requestCreatedAtMs);
    if (f.result.status === 'INSUFFICIENT' || f.result.label === null) {
      insufficient++;
      continue;
    }
    yTrue.push(truth.get(id) as number);
    yPred.push(manifest.classes.indexOf(f.result.label));
  }
  const fused = classificationMetrics(yTrue, yPred, n);
  const strategy = c.fused.values().next().value?.result.strategy ?? '?';
  rowsOut.push([`fused (${strategy})`, String(yTrue.length), fused.accuracy.toFixed(4), fused.macroF1.toFixed(4), '']);
  lines.push(formatTable(['model', 'requests', 'accuracy', 'macro-F1', 'pickup p50 ms'], rowsOut));
  latencies.sort((a, b) => a - b);
  lines.push('');
  lines.push(`requests sent ${sent}, fused ${c.fused.size} (${complete ? 'all' : 'INCOMPLETE'}), partial ${partial}, insufficient ${insufficient}, duplicate results ${duplicates}`);
  lines.push(`throughput ${(c.fused.size / elapsedS).toFixed(0)} fused results/s over ${elapsedS.toFixed(1)} s`);
  lines.push(`end-to-end latency ms: p50 ${quantile(latencies, 0.5)}  p95 ${quantile(latencies, 0.95)}  p99 ${quantile(latencies, 0.99)}  max ${latencies.at(-1)}`);
  return lines.join('\n');
}
