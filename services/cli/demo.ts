import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Kafka } from 'kafkajs';
import { type AggregatorConfig, loadAggregatorConfig } from '../core/ensemble-config.js';
import { loadDataset, type DatasetName } from '../ml/dataset.js';
import { argmax, classificationMetrics, logLoss } from '../ml/metrics.js';
import { createKafka, IDEMPOTENT_RETRY } from '../shared/kafka.js';
import { createLogger } from '../shared/log.js';
import { METRICS_PORTS } from '../shared/metrics-server.js';
import type { EnsembleMetrics } from '../shared/records.js';
import type { RuntimeConfig } from '../shared/runtime-config.js';
import { GROUPS, topicsToEnv } from '../shared/topics.js';
import { infraDown, infraUp } from './local-infra.js';
import { exportOnnxModels } from './onnx-models.js';
import { scrapeGauge, sendLabels, snapshotsAfterNow } from './metrics-check.js';
import { spawnService, type ServiceProcess, waitForGroups } from './processes.js';
import { type Collected, collect, quantile, replayFeatures, startGroupAtEnd, waitFor } from './stream-client.js';
import { formatTable } from '../core/table.js';
import { selectEnsemble } from '../selection/select-ensemble.js';
import { artifactsDir, type Manifest, readManifest, train, writeManifest } from './training.js';

export interface DemoOptions {
  dataset: DatasetName;
  /** Feature events per second; 0 sends as fast as the producer goes. */
  rate: number;
  /** Replay at most this many test rows (0: all). */
  limit: number;
  /** Leave Kafka and Redis running afterwards. */
  keepInfra: boolean;
  /** Aggregator config to run with; default: the one `select` chose (run first when missing). */
  configPath?: string;
  /** Run the workers on the models' ONNX exports where a family has one (the others built in). */
  onnx?: boolean;
  /** Port of the evaluator's Prometheus endpoint; the aggregator's is the next, then one per worker. @defaultValue 9464 */
  metricsPort?: number;
  /** Serve the live dashboard (ES_DASHBOARD_PORT, 9460) and keep everything up until Ctrl-C. */
  dashboard?: boolean;
}

/** Figures computed here, offline, from what the demo itself collected. */
interface OfflineFigures {
  subject: string;
  labelled: number;
  accuracy: number;
  macroF1: number;
  logLoss: number;
}

/**
 * The main job, end to end on real Kafka and Redis: start the infra, train (or reuse) the models,
 * start one worker per model, an aggregator and an evaluator, replay the held-out test split as
 * feature events, report each model's and the fused accuracy on that stream, then send the labels
 * and check the evaluator's rolling metrics (Kafka and Prometheus) against the same figures computed
 * here. Stops what it started.
 */
export async function runDemo(runtime: RuntimeConfig, o: DemoOptions): Promise<void> {
  const say = (line: string) => process.stdout.write(`${line}\n`);
  const logger = createLogger('demo', runtime.logLevel === 'info' ? 'error' : runtime.logLevel);
  const run: DemoRun = { runtime, o, runId: randomBytes(3).toString('hex'), say };
  say('ensemble-stream demo');
  say('1/6 starting Kafka and Redis ...');
  const started = await infraUp(runtime, logger);
  const services: ServiceProcess[] = [];
  try {
    say('2/6 models and the fusion config ...');
    const { manifest, configPath } = await modelsAndConfig(o, say);
    const config: AggregatorConfig = loadAggregatorConfig(configPath);
    const { rows, truth } = await testStream(run, manifest);

    say(`3/6 starting ${manifest.models.length} model workers, the aggregator (${config.strategy}) and the evaluator ...`);
    const kafka = createKafka({ brokers: runtime.kafkaBrokers, security: runtime.kafkaSecurity, clientId: 'ensemble-stream-demo', logger });
    const metricsPort = o.metricsPort ?? 9464;
    await startServices(run, kafka, manifest, configPath, metricsPort, rows.length, services);
    const { collected, elapsedS, complete } = await replayTestStream(run, kafka, rows);

    say('5/6 report');
    const { text, offline } = report(manifest, collected, truth, rows.length, elapsedS, complete);
    say(text);
    await checkEvaluatorWithLabels(run, kafka, manifest, collected, truth, offline, metricsPort);
    if (o.dashboard === true) await untilInterrupted(say);
  } finally {
    await Promise.all(services.map((s) => s.stop()));
    if (!o.keepInfra) infraDown(started);
  }
}

type Say = (line: string) => void;

/** What every phase of one demo run shares. */
interface DemoRun {
  runtime: RuntimeConfig;
  o: DemoOptions;
  /** Tags this run's request ids, Redis namespace and consumer groups. */
  runId: string;
  say: Say;
}

interface ReplayRow {
  requestId: string;
  features: Float64Array;
}

/** Reuses the trained models and the fusion config when both exist; otherwise trains (and selects, unless a config was given). */
async function modelsAndConfig(o: DemoOptions, say: Say): Promise<{ manifest: Manifest; configPath: string }> {
  let manifest: Manifest | undefined = await readManifest(o.dataset);
  const configPath = o.configPath ?? join(artifactsDir(o.dataset), 'aggregator.json');
  if (manifest === undefined || !existsSync(configPath)) {
    if (o.configPath !== undefined) {
      manifest = manifest ?? (await train(o.dataset, 42, say));
    } else {
      say('  training every model family, then choosing models, strategy and weights on the validation split ...');
      const selection = await selectEnsemble({ dataset: o.dataset, seed: 42, outDir: artifactsDir(o.dataset), onProgress: (line) => say(`  ${line}`) });
      manifest = await writeManifest(selection.training);
      say(
        `  chosen: ${selection.chosen.strategy} over ${Object.keys(selection.chosen.weights).length} models (validation log loss ${selection.chosen.validation.logLoss.toFixed(4)}); report in ${selection.files.report}`,
      );
    }
  } else {
    say(`  reusing ${manifest.models.length} trained models and ${configPath}`);
  }
  return { manifest, configPath };
}

/** The held-out test rows to replay (at most `limit`), and each request's true class. */
async function testStream(run: DemoRun, manifest: Manifest): Promise<{ rows: ReplayRow[]; truth: Map<string, number> }> {
  const data = await loadDataset(run.o.dataset);
  const testRows = run.o.limit > 0 ? manifest.split.test.slice(0, run.o.limit) : manifest.split.test;
  const id = (row: number) => `demo-${run.runId}-${row}`;
  const rows = testRows.map((i) => ({ requestId: id(i), features: data.X[i] as Float64Array }));
  const truth = new Map(testRows.map((i) => [id(i), data.y[i] as number]));
  return { rows, truth };
}

/** Starts the dashboard (if asked), one worker per model, the aggregator and the evaluator, into `services`; resolves once all have joined their groups. */
async function startServices(
  run: DemoRun,
  kafka: Kafka,
  manifest: Manifest,
  configPath: string,
  metricsPort: number,
  rowCount: number,
  services: ServiceProcess[],
): Promise<void> {
  const { runtime, o, say } = run;
  // This run's join and metrics state lives in its own Redis namespace, and its evaluator starts at
  // the end of the topics, so earlier runs do not mix into this run's rolling metrics.
  const evaluatorGroup = `${GROUPS.evaluator}.demo-${run.runId}`;
  await startGroupAtEnd(kafka, evaluatorGroup, [runtime.topics.predictions, runtime.topics.fused, runtime.topics.labels]);
  const env = {
    ...process.env,
    ...topicsToEnv(runtime.topics),
    KAFKA_BROKERS: runtime.kafkaBrokers.join(','),
    ES_REDIS_NAMESPACE: `demo-${run.runId}`,
    ES_EVALUATOR_GROUP: evaluatorGroup,
    ES_EVAL_WINDOW: `count:${Math.ceil(rowCount * 1.1)}`,
    ES_METRICS_INTERVAL_MS: '1000',
    ES_METRICS_PORT: String(metricsPort),
  };
  const ports = demoMetricsPorts(
    metricsPort,
    manifest.models.map((m) => m.modelId),
  );
  if (o.dashboard === true) {
    const dashboardPort = Number(process.env.ES_DASHBOARD_PORT ?? METRICS_PORTS.dashboard);
    services.push(
      spawnService('dashboard', ['dashboard', ...ports.targets.flatMap((t) => ['--scrape', t])], { ...env, ES_DASHBOARD_PORT: String(dashboardPort) }),
    );
    say(`  dashboard: http://127.0.0.1:${dashboardPort}/`);
  }
  const onnx = o.onnx === true ? await exportOnnxModels(manifest.models, say) : new Map<string, string>();
  for (const m of manifest.models) {
    const path = onnx.get(m.modelId);
    const args = path === undefined ? ['worker', '--artifact', m.artifactPath] : ['worker', '--onnx', path];
    if (path !== undefined) say(`  ${m.modelId}: ONNX (${path})`);
    services.push(spawnService(`worker-${m.modelId}`, args, { ...env, ES_METRICS_PORT: String(ports.worker(m.modelId)) }));
  }
  services.push(spawnService('aggregator', ['aggregator', '--config', configPath], { ...env, ES_METRICS_PORT: String(ports.aggregator) }));
  services.push(spawnService('evaluator', ['evaluator', '--config', configPath], env));
  await waitForGroups(
    kafka,
    new Map([...manifest.models.map((m) => GROUPS.worker(m.modelId)), GROUPS.aggregator, evaluatorGroup].map((g) => [g, 1])),
    services,
  );
}

/** Sends the rows as feature events at the demo's rate and collects the predictions and fused results they bring back. */
async function replayTestStream(run: DemoRun, kafka: Kafka, rows: ReplayRow[]): Promise<{ collected: Collected; elapsedS: number; complete: boolean }> {
  const { runtime, o, say } = run;
  const { collected, consumer } = await collect(
    kafka,
    { fused: runtime.topics.fused, predictions: runtime.topics.predictions },
    `demo-${run.runId}-`,
    `ensemble-stream.demo.${run.runId}`,
  );
  const producer = kafka.producer({ idempotent: true, retry: IDEMPOTENT_RETRY });
  await producer.connect();
  say(`4/6 replaying ${rows.length} held-out ${o.dataset} requests at ${o.rate > 0 ? `${o.rate}/s` : 'full speed'} ...`);
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
  return { collected, elapsedS, complete };
}

/** Sends the labels of the fused requests and compares the evaluator's rolling metrics with the figures computed here. */
async function checkEvaluatorWithLabels(
  run: DemoRun,
  kafka: Kafka,
  manifest: Manifest,
  collected: Collected,
  truth: Map<string, number>,
  offline: readonly OfflineFigures[],
  metricsPort: number,
): Promise<void> {
  const { runtime, say } = run;
  say('6/6 sending the labels; the evaluator joins them to what was predicted ...');
  const snapshots = await snapshotsAfterNow(kafka, runtime.topics.metrics, `ensemble-stream.demo.${run.runId}.metrics`);
  const labels = new Map([...truth].filter(([rid]) => collected.fused.has(rid)).map(([rid, y]) => [rid, manifest.classes[y] as string]));
  await sendLabels(kafka, runtime.topics.labels, labels);
  const snapshot = await snapshots.waitForLabelled(labels.size, 60_000);
  await snapshots.stop();
  if (snapshot === undefined) say('  no metrics snapshot covered every label within 60 s (see .local/logs/evaluator.log)');
  else say(await compareWithEvaluator(snapshot, offline, `http://127.0.0.1:${metricsPort}/metrics`));
}

/** /metrics ports of the demo's services: the evaluator's, the aggregator's next, then one per worker. */
function demoMetricsPorts(evaluator: number, models: readonly string[]) {
  const worker = (model: string) => evaluator + 2 + models.indexOf(model);
  const url = (port: number) => `http://127.0.0.1:${port}/metrics`;
  return {
    aggregator: evaluator + 1,
    worker,
    targets: [`evaluator=${url(evaluator)}`, `aggregator=${url(evaluator + 1)}`, ...models.map((m) => `${m}=${url(worker(m))}`)],
  };
}

async function untilInterrupted(say: (line: string) => void): Promise<void> {
  say(`dashboard stays up: http://127.0.0.1:${process.env.ES_DASHBOARD_PORT ?? METRICS_PORTS.dashboard}/ (Ctrl-C stops everything)`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
}

function report(
  manifest: Manifest,
  c: Collected,
  truth: Map<string, number>,
  sent: number,
  elapsedS: number,
  complete: boolean,
): { text: string; offline: OfflineFigures[] } {
  const n = manifest.classes.length;
  const offline: OfflineFigures[] = [];
  const rowsOut: string[][] = [];
  const figures = (subject: string, yTrue: number[], probabilities: number[][]) => {
    const m = classificationMetrics(yTrue, probabilities.map(argmax), n);
    const f = { subject, labelled: yTrue.length, accuracy: m.accuracy, macroF1: m.macroF1, logLoss: logLoss(yTrue, probabilities) };
    offline.push(f);
    return f;
  };
  for (const model of manifest.models) {
    const { yTrue, probabilities, pickup } = modelAnswers(model.modelId, c, truth);
    const f = figures(model.modelId, yTrue, probabilities);
    rowsOut.push([model.modelId, String(f.labelled), f.accuracy.toFixed(4), f.macroF1.toFixed(4), f.logLoss.toFixed(4), String(quantile(pickup, 0.5))]);
  }
  const { yTrue, probabilities, partial, insufficient, duplicates, latencies } = fusedAnswers(c, truth);
  const strategy = c.fused.values().next().value?.result.strategy ?? '?';
  const fused = figures('ensemble', yTrue, probabilities);
  rowsOut.push([`fused (${strategy})`, String(fused.labelled), fused.accuracy.toFixed(4), fused.macroF1.toFixed(4), fused.logLoss.toFixed(4), '']);
  const lines = [
    formatTable(['model', 'requests', 'accuracy', 'macro-F1', 'log loss', 'pickup p50 ms'], rowsOut),
    '',
    `requests sent ${sent}, fused ${c.fused.size} (${complete ? 'all' : 'INCOMPLETE'}), partial ${partial}, insufficient ${insufficient}, duplicate results ${duplicates}`,
    `throughput ${(c.fused.size / elapsedS).toFixed(0)} fused results/s over ${elapsedS.toFixed(1)} s`,
    `end-to-end latency ms: p50 ${quantile(latencies, 0.5)}  p95 ${quantile(latencies, 0.95)}  p99 ${quantile(latencies, 0.99)}  max ${latencies.at(-1)}`,
  ];
  return { text: lines.join('\n'), offline };
}

/** One model's scored answers and pickup times (sorted) over the stream. */
function modelAnswers(modelId: string, c: Collected, truth: Map<string, number>): { yTrue: number[]; probabilities: number[][]; pickup: number[] } {
  const yTrue: number[] = [];
  const probabilities: number[][] = [];
  const pickup: number[] = [];
  for (const [rid, byModel] of c.predictions) {
    const p = byModel.get(modelId);
    if (p === undefined) continue;
    pickup.push(p.receivedAtMs - p.requestCreatedAtMs);
    if (p.status !== 'OK' || p.probabilities === null) continue;
    yTrue.push(truth.get(rid) as number);
    probabilities.push(p.probabilities);
  }
  pickup.sort((a, b) => a - b);
  return { yTrue, probabilities, pickup };
}

/** The fused results' scored answers, their status counts and end-to-end latencies (sorted). */
function fusedAnswers(c: Collected, truth: Map<string, number>) {
  const yTrue: number[] = [];
  const probabilities: number[][] = [];
  let partial = 0;
  let insufficient = 0;
  let duplicates = 0;
  const latencies: number[] = [];
  for (const [rid, f] of c.fused) {
    duplicates += f.copies - 1;
    if (f.result.status === 'PARTIAL') partial++;
    latencies.push(f.receivedAtMs - f.result.requestCreatedAtMs);
    if (f.result.probabilities === null) {
      insufficient++;
      continue;
    }
    yTrue.push(truth.get(rid) as number);
    probabilities.push(f.result.probabilities);
  }
  latencies.sort((a, b) => a - b);
  return { yTrue, probabilities, partial, insufficient, duplicates, latencies };
}

async function compareWithEvaluator(snapshot: EnsembleMetrics, offline: readonly OfflineFigures[], metricsUrl: string): Promise<string> {
  let scraped = new Map<string, number>();
  try {
    scraped = await scrapeGauge(metricsUrl, 'ensemble_stream_accuracy_ratio');
  } catch {
    // Reported below as a missing value.
  }
  const rows = offline.map((f) => {
    const e = snapshot.entries.find((x) => x.subject === f.subject);
    const prom = scraped.get(f.subject);
    const agree =
      e?.accuracy !== null && e?.accuracy !== undefined && Math.abs(e.accuracy - f.accuracy) < 1e-9 && prom !== undefined && Math.abs(prom - f.accuracy) < 1e-9;
    return [
      f.subject,
      String(e?.labelled ?? '-'),
      e?.accuracy?.toFixed(4) ?? '-',
      prom?.toFixed(4) ?? '-',
      f.accuracy.toFixed(4),
      e?.logLoss?.toFixed(4) ?? '-',
      f.logLoss.toFixed(4),
      e?.latencyP50Ms?.toFixed(0) ?? '-',
      agree ? 'yes' : 'NO',
    ];
  });
  return [
    `rolling metrics (${snapshot.window}) from the ensemble-metrics topic and ${metricsUrl}, next to the same figures computed here:`,
    formatTable(['subject', 'labelled', 'acc (kafka)', 'acc (/metrics)', 'acc (here)', 'log loss (kafka)', 'log loss (here)', 'latency p50 ms', 'agree'], rows),
  ].join('\n');
}
