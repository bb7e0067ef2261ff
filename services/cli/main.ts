#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { runAggregator } from '../aggregator/main.js';
import { runDashboard } from '../dashboard/main.js';
import { ConfigError, describeError } from '../shared/errors.js';
import { createLogger } from '../shared/log.js';
import { positiveInt, readRuntimeConfig } from '../shared/runtime-config.js';
import { runEvaluator } from '../evaluator/main.js';
import { runModelServer } from '../model-server/main.js';
import { selectEnsemble, selectFromPredictionFiles } from '../selection/select-ensemble.js';
import { sweepSeeds } from '../selection/seed-sweep.js';
import { runBuiltinWorker, runColocatedWorker, runOnnxWorker, runRemoteWorker, runSyntheticWorker } from '../worker/main.js';
import { DATASET_USAGE, builtinDataset, datasetFromArgs, datasetName } from './dataset-args.js';
import { runDemo } from './demo.js';
import { clusterEnv, infraDown, infraUp } from './local-infra.js';
import { exportOnnxModels } from './onnx-models.js';
import { artifactsDir, train, writeManifest } from './training.js';

const USAGE = `usage: ensemble-stream <command> [options]

commands:
  demo        [--dataset letter|spam|satellite] [--rate N (250; 0 = full speed)] [--limit N] [--config FILE] [--keep-infra] [--onnx] [--dashboard]
              the whole pipeline on local Kafka and Redis, with a report (--onnx: workers run the ONNX exports)
  infra       up | down [--brokers N] [--redis-cluster]
                             start (or stop) local Kafka (N > 1: a KRaft cluster of N nodes, internal
                             topics at RF 3 / min ISR 2) and Redis (a 3-master Redis Cluster), and
                             create the topics
  train       [DATA] [--seed N] [--onnx]               train every model family, write artifacts
              (--onnx: also <artifact>.onnx for logistic regression, decision tree, random forest)
  select      [DATA] [--seed N | --seeds N] [--out DIR (artifacts/<dataset>)]
              train, evaluate every model and fusion strategy, write the chosen aggregator config and a report;
              --seeds N: run seeds 1..N and print how often the choice was at or above the best single model
  select      --predictions [ID=]FILE ... [--name NAME] [--seed N | --seeds N] --out DIR
              choose models, strategy and weights from your models' held-out predictions (CSV or JSON lines)
              DATA: ${DATASET_USAGE}
  worker      --artifact FILE [--model-id ID]          run one built-in model
              --artifact FILE --artifact FILE ... [--onnx FILE ...]
                                                           serve several models from one consumer (co-located;
                                                           a FILE ending in .onnx runs with onnxruntime)
              --remote URL --model NAME [--model-id ID]  run one model served over V2 REST (KServe)
              --onnx FILE [--classes A,B,...] [--task classification|regression] [--output NAME] [--model-id ID]
                                                           run an ONNX model (onnxruntime, one inference per batch)
              --synthetic CLASSES --model-id ID[,ID...]    run synthetic models (for benchmarks; several: co-located)
  model-server --artifact FILE [--artifact FILE ...] [--port N]
              serve built-in models over the Open Inference Protocol (V2 REST)
  aggregator  --config FILE                            run one fusion aggregator instance
  evaluator   --config FILE                            join labels, publish rolling metrics (Kafka, /metrics)
  dashboard   [--scrape NAME=URL ...]                  live page over the services' /metrics and the metrics topic
              (ES_DASHBOARD_PORT 9460, ES_DASHBOARD_TARGETS NAME=URL,...)

Kafka and Redis: KAFKA_BROKERS (127.0.0.1:9092), REDIS_URL (redis://127.0.0.1:6379).
Topics: ES_TOPIC_PREFIX, ES_TOPIC_<FEATURES|PREDICTIONS|FUSED|LABELS|METRICS|DEAD_LETTERS>.`;

/** Requests per second the demo replays at: what five in-process models keep up with on two cores. */
const DEFAULT_DEMO_RATE = 250;

function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw new ConfigError(`${flag} is required`);
  return value;
}

const OPTIONS = {
  dataset: { type: 'string' },
  csv: { type: 'string' },
  target: { type: 'string' },
  drop: { type: 'string', multiple: true },
  id: { type: 'string' },
  name: { type: 'string' },
  predictions: { type: 'string', multiple: true },
  seeds: { type: 'string' },
  rate: { type: 'string' },
  limit: { type: 'string' },
  seed: { type: 'string' },
  out: { type: 'string' },
  config: { type: 'string' },
  artifact: { type: 'string', multiple: true },
  remote: { type: 'string' },
  model: { type: 'string' },
  port: { type: 'string' },
  synthetic: { type: 'string' },
  'model-id': { type: 'string' },
  'keep-infra': { type: 'boolean' },
  onnx: { type: 'boolean' },
  classes: { type: 'string' },
  task: { type: 'string' },
  output: { type: 'string' },
  brokers: { type: 'string' },
  'redis-cluster': { type: 'boolean' },
  dashboard: { type: 'boolean' },
  scrape: { type: 'string', multiple: true },
  help: { type: 'boolean', short: 'h' },
} as const;

function parseCommandArgs(args: string[]) {
  return parseArgs({ args, allowPositionals: true, options: OPTIONS });
}

type CliValues = ReturnType<typeof parseCommandArgs>['values'];
type Command = (values: CliValues, positionals: string[]) => Promise<void>;

async function demoCommand(values: CliValues): Promise<void> {
  return runDemo(readRuntimeConfig(), {
    dataset: builtinDataset(values.dataset),
    rate: values.rate === undefined ? DEFAULT_DEMO_RATE : values.rate === '0' ? 0 : positiveInt(values.rate, '--rate'),
    limit: values.limit === undefined ? 0 : positiveInt(values.limit, '--limit'),
    keepInfra: values['keep-infra'] === true,
    onnx: values.onnx === true,
    dashboard: values.dashboard === true,
    ...(values.config === undefined ? {} : { configPath: values.config }),
  });
}

async function infraCommand(values: CliValues, positionals: string[]): Promise<void> {
  const runtime = readRuntimeConfig();
  const shape = { brokers: values.brokers === undefined ? 1 : positiveInt(values.brokers, '--brokers'), redisCluster: values['redis-cluster'] === true };
  if (positionals[0] === 'up') await infraUp(runtime, createLogger('infra', runtime.logLevel), process.env, shape);
  else if (positionals[0] === 'down') infraDown(undefined, clusterEnv(runtime, shape, process.env));
  else throw new ConfigError('infra: say "up" or "down"');
}

async function trainCommand(values: CliValues): Promise<void> {
  const seed = values.seed === undefined ? 42 : positiveInt(values.seed, '--seed');
  const log = (line: string) => process.stdout.write(`${line}\n`);
  const manifest = await train(await datasetFromArgs(values), seed, log);
  if (values.onnx === true) await exportOnnxModels(manifest.models, log);
}

async function selectCommand(values: CliValues, positionals: string[]): Promise<void> {
  // `--predictions a.csv b.csv` (a shell glob) leaves every file after the first as a positional.
  if (positionals.length > 0 && values.predictions === undefined) throw new ConfigError(`select: unexpected argument "${positionals[0]}"`);
  return select({ ...values, ...(values.predictions === undefined ? {} : { predictions: [...values.predictions, ...positionals] }) });
}

async function workerCommand(values: CliValues, positionals: string[]): Promise<void> {
  if (values.synthetic !== undefined)
    return runSyntheticWorker(positiveInt(values.synthetic, '--synthetic'), required(values['model-id'], '--model-id').split(','));
  const files = [...(values.artifact ?? []), ...(values.onnx === true ? positionals : [])];
  if (files.length > 1) {
    const single = (['model-id', 'classes', 'task', 'output'] as const).filter((flag) => values[flag] !== undefined);
    if (single.length > 0) throw new ConfigError(`--${single.join(', --')} apply to one model; co-located models take their ids and classes from their files`);
    return runColocatedWorker(files);
  }
  if (values.onnx === true) return onnxWorkerCommand(values, positionals);
  if (values.remote !== undefined) return runRemoteWorker(values.remote, required(values.model, '--model'), values['model-id']);
  return runBuiltinWorker(required(values.artifact?.[0], '--artifact'), values['model-id']);
}

async function onnxWorkerCommand(values: CliValues, positionals: string[]): Promise<void> {
  const task = values.task;
  if (task !== undefined && task !== 'classification' && task !== 'regression') throw new ConfigError(`--task: "${task}" is not classification or regression`);
  return runOnnxWorker(required(positionals[0], '--onnx FILE'), {
    ...(values['model-id'] === undefined ? {} : { modelId: values['model-id'] }),
    ...(values.classes === undefined ? {} : { classes: values.classes.split(',').map((c) => c.trim()) }),
    ...(task === undefined ? {} : { task }),
    ...(values.output === undefined ? {} : { output: values.output }),
  });
}

async function modelServerCommand(values: CliValues): Promise<void> {
  return runModelServer({
    artifactPaths: values.artifact ?? [],
    ...(values.port === undefined ? {} : { port: positiveInt(values.port, '--port') }),
  });
}

const COMMANDS = new Map<string, Command>([
  ['demo', demoCommand],
  ['infra', infraCommand],
  ['train', trainCommand],
  ['select', selectCommand],
  ['worker', workerCommand],
  ['model-server', modelServerCommand],
  ['aggregator', async (values) => runAggregator(required(values.config, '--config'))],
  ['evaluator', async (values) => runEvaluator(required(values.config, '--config'))],
  ['dashboard', async (values) => runDashboard(values.scrape ?? [])],
]);

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  const { values, positionals } = parseCommandArgs(rest);
  if (values.help === true || command === undefined || command === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const run = COMMANDS.get(command);
  if (run === undefined) throw new ConfigError(`unknown command "${command}"\n${USAGE}`);
  return run(values, positionals);
}

interface SelectArgs {
  dataset?: string | undefined;
  csv?: string | undefined;
  target?: string | undefined;
  drop?: string[] | undefined;
  id?: string | undefined;
  name?: string | undefined;
  predictions?: string[] | undefined;
  seed?: string | undefined;
  seeds?: string | undefined;
  out?: string | undefined;
}

async function select(values: SelectArgs): Promise<void> {
  const say = (line: string) => process.stdout.write(`  ${line}\n`);
  if (values.seed !== undefined && values.seeds !== undefined) throw new ConfigError('give --seed or --seeds, not both');
  const fromFiles = values.predictions !== undefined;
  if (fromFiles && (values.dataset ?? values.csv) !== undefined) throw new ConfigError('--predictions replaces --dataset and --csv');
  if (fromFiles && values.out === undefined) throw new ConfigError('--predictions needs --out DIR');
  const source = fromFiles ? undefined : await datasetFromArgs(values);
  const name = source === undefined ? (values.name ?? 'predictions') : datasetName(source);
  const outDir = values.out ?? artifactsDir(name);
  const run = (seed: number, dir: string) =>
    source === undefined
      ? selectFromPredictionFiles({ files: values.predictions!, name, seed, outDir: dir, onProgress: say })
      : selectEnsemble({ dataset: source, seed, outDir: dir, onProgress: say });

  if (values.seeds !== undefined) {
    const count = positiveInt(values.seeds, '--seeds');
    const seeds = Array.from({ length: count }, (_, i) => i + 1);
    const sweep = await sweepSeeds(name, seeds, outDir, run, say);
    process.stdout.write(`\n${sweep.table}\n\nwrote ${sweep.reportPath} and a selection per seed in ${outDir}/seed-<n>/\n`);
    return;
  }
  const result = await run(values.seed === undefined ? 42 : positiveInt(values.seed, '--seed'), outDir);
  if (values.out === undefined && result.training !== undefined) await writeManifest(result.training);
  const files = [result.files.config, result.files.metaArtifact, result.files.report, result.files.chart].filter((f) => f !== undefined);
  process.stdout.write(`\n${result.table}\n\nwrote ${files.join('\n      ')}\n`);
}

const ONE_SHOT = new Set(['demo', 'infra', 'train', 'select', 'help', undefined]);

main(process.argv.slice(2)).then(
  () => {
    // Long-running services keep the process alive through their connections; the rest end here.
    if (ONE_SHOT.has(process.argv[2])) process.exit(0);
  },
  (error: unknown) => {
    process.stderr.write(`ensemble-stream: ${describeError(error)}\n`);
    process.exit(error instanceof ConfigError ? 2 : 1);
  },
);
