import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Kafka } from 'kafkajs';
import { type AggregatorConfig, CONFIG_DEFAULTS } from '../services/core/ensemble-config.js';
import { BREAKER_DEFAULTS } from '../services/core/ensemble-config.js';
import { spawnService, type ServiceProcess, waitForGroups } from '../services/cli/processes.js';
import { readManifest } from '../services/cli/training.js';
import { repoRoot } from '../services/shared/repo-root.js';
import { GROUPS } from '../services/shared/topics.js';
import { colocatedBase, colocatedProfile } from './colocated.js';
import type { BenchOptions, ProfileName } from './options.js';

/** The models of one profile and the aggregator config that fuses them. */
export interface Profile {
  name: ProfileName;
  models: { modelId: string; workerArgs: string[] }[];
  config: AggregatorConfig;
}

/** The letter models the real profile runs: one instance-based, one ensemble, one linear. */
const LETTER_FAMILIES = ['knn', 'random-forest', 'logistic-regression'];

export async function loadProfile(name: ProfileName, o: BenchOptions, say: (line: string) => void): Promise<Profile> {
  const base = colocatedBase(name);
  if (base !== undefined) return colocatedProfile(await loadProfile(base, o, say));
  if (name === 'dead-model') {
    // `--models` synthetic models expected, one never started, and a breaker that never opens:
    // every request waits for its deadline, so the phase measures how late deadlines are.
    const ids = [...syntheticIds(o.models - 1), 'synthetic-dead'];
    const classes = Array.from({ length: o.classes }, (_, i) => `c${i}`);
    const config = fusionConfig(classes, ids, { ...o, deadlineMs: o.deadModel.deadlineMs });
    return {
      name,
      models: ids.slice(0, -1).map((modelId) => ({ modelId, workerArgs: ['worker', '--synthetic', String(o.classes), '--model-id', modelId] })),
      config: { ...config, breaker: { ...config.breaker, volumeThreshold: 1_000_000_000 } },
    };
  }
  if (name === 'synthetic') {
    const ids = syntheticIds(o.models);
    const classes = Array.from({ length: o.classes }, (_, i) => `c${i}`);
    return {
      name,
      models: ids.map((modelId) => ({ modelId, workerArgs: ['worker', '--synthetic', String(o.classes), '--model-id', modelId] })),
      config: fusionConfig(classes, ids, o),
    };
  }
  let manifest = await readManifest('letter');
  if (manifest === undefined) {
    say('  training the letter models (once) ...');
    const cli = join(repoRoot(), 'dist', 'services', 'cli', 'main.js');
    const trained = spawnSync(process.execPath, [cli, 'train', '--dataset', 'letter'], { stdio: 'inherit' });
    if (trained.status !== 0) throw new Error('training the letter models failed');
    manifest = await readManifest('letter');
    if (manifest === undefined) throw new Error('training left no letter manifest');
  }
  const chosen = manifest.models.filter((m) => LETTER_FAMILIES.includes(m.family));
  if (chosen.length !== LETTER_FAMILIES.length) throw new Error(`the letter manifest lacks one of ${LETTER_FAMILIES.join(', ')}`);
  return {
    name,
    models: chosen.map((m) => ({ modelId: m.modelId, workerArgs: ['worker', '--artifact', m.artifactPath] })),
    config: fusionConfig(
      manifest.classes,
      chosen.map((m) => m.modelId),
      o,
    ),
  };
}

/** synthetic-a, synthetic-b, ... (past z: synthetic-27, ...). */
function syntheticIds(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `synthetic-${i < 26 ? String.fromCharCode(97 + i) : i + 1}`);
}

/** Equal-weight soft voting, like the demo's default, with the bench's deadline and state TTL. */
function fusionConfig(classes: string[], modelIds: string[], o: BenchOptions): AggregatorConfig {
  return {
    task: 'classification',
    classes,
    strategy: 'soft-voting',
    models: modelIds.map((id) => ({ id, weight: 1 })),
    deadlineMs: o.deadlineMs,
    quorum: 1,
    stateTtlMs: o.stateTtlMs,
    maxMessageBytes: CONFIG_DEFAULTS.maxMessageBytes,
    fusedMemoryMs: CONFIG_DEFAULTS.fusedMemoryMs,
    restoreHorizonMs: CONFIG_DEFAULTS.restoreHorizonMs,
    breaker: BREAKER_DEFAULTS,
    delivery: 'exactly-once',
  };
}

/** `env` with one of the bench's preload modules (dist/bench/<file>) added to NODE_OPTIONS. */
function withPreload(env: NodeJS.ProcessEnv, file: string): NodeJS.ProcessEnv {
  const preload = pathToFileURL(join(repoRoot(), 'dist', 'bench', file)).href;
  return { ...env, NODE_OPTIONS: `${env.NODE_OPTIONS ?? ''} --import=${preload}`.trim() };
}

/** `env` for a service that writes a V8 CPU profile to `file` when it stops (cpu-profile.ts). */
export function cpuProfileEnv(env: NodeJS.ProcessEnv, file: string): NodeJS.ProcessEnv {
  return { ...withPreload(env, 'cpu-profile.js'), ES_BENCH_CPU_PROFILE: file };
}

/** Where the bench process called `name` counts its Kafka requests (one profile runs at a time). */
export function requestsFile(workDir: string, name: string): string {
  return join(workDir, `${name}.kafka-requests.json`);
}

/** `env` for a process whose Kafka requests are counted into `file` (kafka-requests.ts). */
export function kafkaRequestsEnv(env: NodeJS.ProcessEnv, file: string): NodeJS.ProcessEnv {
  return { ...withPreload(env, 'kafka-requests.js'), ES_BENCH_KAFKA_REQUESTS: file };
}

/** The workers and the aggregators, each its own process, spawned from the built CLI like the demo. */
export class Pipeline {
  /** `names`: each service's name in the bench's tables and files (`worker-<model>`, `aggregator`), in the order of `services`. */
  private constructor(
    readonly services: ServiceProcess[],
    readonly names: string[],
  ) {}

  /**
   * Every service counts its Kafka requests into `workDir` (kafka-requests.ts). `cpuProfileDir`:
   * each service writes a V8 CPU profile there when it stops. Node refuses `--cpu-prof` in
   * NODE_OPTIONS, so a preloaded module runs the same profiler (cpu-profile.ts).
   */
  static async start(profile: Profile, aggregators: number, env: NodeJS.ProcessEnv, kafka: Kafka, workDir: string, cpuProfileDir?: string): Promise<Pipeline> {
    const configPath = join(workDir, `aggregator-${profile.name}.json`);
    writeFileSync(configPath, `${JSON.stringify(profile.config, null, 2)}\n`);
    const envFor = (name: string): NodeJS.ProcessEnv => {
      // Several workers share the host: any free port for each one's /metrics.
      const counted = { ...kafkaRequestsEnv(env, requestsFile(workDir, name)), ES_METRICS_PORT: '0' };
      if (cpuProfileDir === undefined) return counted;
      return cpuProfileEnv(counted, join(cpuProfileDir, `${profile.name}-${name}.cpuprofile`));
    };
    const names = profile.models.map((m) => `worker-${m.modelId}`);
    const services = profile.models.map((m, i) => spawnService(`bench-${profile.name}-${names[i]}`, m.workerArgs, envFor(names[i] as string)));
    for (let i = 1; i <= aggregators; i++) {
      const name = aggregators === 1 ? 'aggregator' : `aggregator-${i}`;
      names.push(name);
      services.push(
        spawnService(`bench-${profile.name}-${name}`, ['aggregator', '--config', configPath], { ...envFor(name), ES_INSTANCE_ID: `bench-${name}` }),
      );
    }
    const pipeline = new Pipeline(services, names);
    try {
      const aggregatorGroup = env.ES_AGGREGATOR_GROUP ?? GROUPS.aggregator;
      await waitForGroups(kafka, new Map([...profile.models.map((m) => [GROUPS.worker(m.modelId), 1] as const), [aggregatorGroup, aggregators]]), services);
    } catch (error) {
      await pipeline.stop();
      throw error;
    }
    return pipeline;
  }

  async stop(): Promise<void> {
    await Promise.all(this.services.map((s) => s.stop()));
  }
}
