import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { infraDown, infraUp } from '../services/cli/local-infra.js';
import { ConfigError, describeError } from '../services/shared/errors.js';
import { createKafka } from '../services/shared/kafka.js';
import { createLogger } from '../services/shared/log.js';
import { Redis } from 'ioredis';
import { createRedis } from '../services/shared/redis.js';
import { repoRoot } from '../services/shared/repo-root.js';
import { DEFAULT_REDIS_URL, readRuntimeConfig } from '../services/shared/runtime-config.js';
import { allTopics, withPrefix } from '../services/shared/topics.js';
import { type BacklogResult, backlogProblem, runBacklog } from './backlog.js';
import { type CeilingResult, measureCeiling } from './ceiling.js';
import { FusedCollector } from './collector.js';
import { createTopics, deleteTopics } from './kafka-topics.js';
import { startLoadGenerator } from './load-driver.js';
import { brokerPid, watchedProcesses } from './local-processes.js';
import { messageSizes } from './message-sizes.js';
import { measureMetricsCost } from './metrics-cost.js';
import { type BenchOptions, parseBenchOptions, USAGE } from './options.js';
import { type IdleResult, measureBrokerAlone, measureIdle, type PhaseContext, type PhaseResult, runPhase } from './phase.js';
import { kafkaRequestsEnv, loadProfile, requestsFile, Pipeline, type Profile } from './pipeline.js';
import { type ProfileSummary, summariseProfile } from './profile-summary.js';
import { keysLeft, redisSnapshot } from './redis-stats.js';
import { type BenchReport, formatReport, idleSummary, kafkajsBound } from './report.js';
import { runScaling } from './scaling.js';
import { latencyPlot } from './svg-plot.js';

/**
 * `npm run bench`: the real pipeline (a worker process per model, the aggregator processes, local
 * Kafka and Redis) under a load generator, first at a fixed offered rate and then at saturation, with
 * synthetic models (the pipeline's own cost) and the trained letter models (with inference). Also
 * measures the broker's raw rates in the same run, so the figures read as a share of the machine.
 * `--scaling` runs the scaling matrix instead (scaling.ts).
 */
const say = (line: string): void => void process.stdout.write(`${line}\n`);
/** Long enough for the broker's periodic work (checkpoints every 5 s) to show. */
const BROKER_ALONE_SECONDS = 10;

async function main(argv: string[]): Promise<void> {
  const options = parseBenchOptions(argv);
  if (options === undefined) return say(USAGE);
  const startedAt = new Date();
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const runId = `bench-${startedAt.getTime().toString(36)}`;
  const resultsDir = join(repoRoot(), 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ES_TOPIC_PREFIX: `${runId}-${options.profiles[0] ?? 'bench'}-`,
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
  };
  const runtime = readRuntimeConfig(env);
  const logger = createLogger('bench', runtime.logLevel);
  const loadStart = loadavg()[0] ?? 0;
  const partitions = options.partitions ?? runtime.partitions;

  say(`ensemble-stream bench ${runId}: kafka ${runtime.kafkaBrokers.join(',')}, redis ${runtime.redisUrl}`);
  const started = await infraUp(runtime, logger, env);
  stopInfra = () => infraDown(started, env);
  const kafka = createKafka({ brokers: runtime.kafkaBrokers, security: runtime.kafkaSecurity, clientId: 'ensemble-stream-bench', logger });
  const client = createRedis(runtime.redis, 'ensemble-stream-bench');
  // Its INFO readings are one server's: a cluster's figures would be one node's share.
  if (!(client instanceof Redis)) throw new Error('the benchmark measures one Redis server: point REDIS_URL at a single node');
  const redis = client;
  const workDir = mkdtempSync(join(tmpdir(), 'es-bench-'));
  const createdTopics: string[] = [];
  let loadGenerator: ChildProcess | undefined;
  try {
    // Before the run's processes talk to the broker, so that its share of the idle figures can be read.
    const aloneAt = brokerPid(env);
    const brokerAlone = options.idleSeconds > 0 && aloneAt !== undefined ? await measureBrokerAlone(aloneAt, BROKER_ALONE_SECONDS) : undefined;
    const baseline = await redisSnapshot(redis);
    let ceiling: CeilingResult[] = [];
    if (options.ceiling) {
      say('ceiling: the broker alone ...');
      const sizes = messageSizes(options.classes);
      const ceilingSizes = [
        { label: 'features', valueBytes: sizes.featureEvent },
        { label: 'predictions', valueBytes: sizes.prediction },
        { label: 'fused', valueBytes: sizes.fused },
      ];
      createdTopics.push(...ceilingSizes.flatMap((s) => [`${runId}-ceiling-java-${s.label}`, `${runId}-ceiling-kafkajs-${s.label}`]));
      ceiling = await measureCeiling({
        kafka,
        brokers: runtime.kafkaBrokers,
        partitions,
        topicPrefix: `${runId}-`,
        sizes: ceilingSizes,
        records: options.ceilingRecords,
        env,
        brokerPid: brokerPid(env),
        say,
      });
    }

    const profileDir = options.cpuProfile ? join(resultsDir, `${stamp}-profiles`) : undefined;
    if (profileDir !== undefined) mkdirSync(profileDir, { recursive: true });
    const cpuProfiles: ProfileSummary[] = [];
    let backlog: BacklogResult | undefined;
    if (options.backlog !== undefined) {
      const backlogContext = {
        kafka,
        redis,
        env,
        brokers: runtime.kafkaBrokers,
        partitions: runtime.partitions,
        options,
        runId,
        workDir,
        say,
        cpuProfileDir: profileDir,
      };
      backlog = await runBacklog({ ...backlogContext, requests: options.backlog });
      if (profileDir !== undefined) cpuProfiles.push(...summariseProfiles(profileDir, 'backlog'));
    }

    loadGenerator = await startLoadGenerator(kafkaRequestsEnv(env, requestsFile(workDir, 'load-generator')));
    if (options.scaling !== undefined) {
      const track = (pipeline: Pipeline | undefined) => void (running = pipeline);
      const scalingCtx = { kafka, redis, env, runId, loadGenerator, workDir, resultsDir, stamp, partitions, createdTopics, say, track };
      return await runScaling(options, options.scaling, scalingCtx);
    }
    const phases: PhaseResult[] = [];
    const idle: IdleResult[] = [];
    const runs = options.profiles.flatMap((profile) =>
      options.deliveries.map((delivery) => ({ profile, delivery, label: delivery === 'exactly-once' ? profile : `${profile}-${delivery}` })),
    );
    for (const { profile: name, delivery, label } of runs) {
      // Each profile has its own topics, Redis keys and aggregator group: nothing left over from
      // one profile (a backlog, a consumer group's position) can reach the next.
      const topics = withPrefix(`${runId}-${label}-`);
      await createTopics(kafka, topics, partitions);
      createdTopics.push(...allTopics(topics));
      const profileEnv = {
        ...env,
        ES_TOPIC_PREFIX: `${runId}-${label}-`,
        ES_REDIS_NAMESPACE: `${runId}-${label}`,
        ES_AGGREGATOR_GROUP: `${runId}.aggregator.${label}`,
      };
      const collector = await FusedCollector.start(kafka, topics.fused, `${runId}.collector.${label}`);
      try {
        const ctx = { kafka, redis, topics, redisNamespace: `${runId}-${label}`, loadGenerator, collector, runId, processes: [] };
        const profile = await loadProfile(name, options, say);
        const ran = await runProfile({ ...profile, config: { ...profile.config, delivery } }, label, options, ctx, profileEnv, workDir, profileDir);
        phases.push(...ran.phases);
        if (ran.idle !== undefined) idle.push(ran.idle);
      } finally {
        await collector.stop();
      }
      if (profileDir !== undefined) cpuProfiles.push(...summariseProfiles(profileDir, name));
    }

    const afterPhases = await redisSnapshot(redis);
    say(`waiting for the join state TTL (${options.stateTtlMs} ms) to check Redis memory ...`);
    let left = 0;
    await poll(async () => {
      left = 0;
      for (const { label } of runs) {
        const k = await keysLeft(redis, `${runId}-${label}`);
        left += k.states + k.predictionHashes + k.deadlineEntries;
      }
      return left === 0;
    }, options.stateTtlMs + 30_000);
    const afterTtl = await redisSnapshot(redis);

    const report: BenchReport = {
      startedAt: startedAt.toISOString(),
      options: { ...options },
      environment: {
        node: process.version,
        cpus: cpus().length,
        loadAverage1mStart: loadStart,
        loadAverage1mEnd: loadavg()[0] ?? 0,
        kafkaBrokers: runtime.kafkaBrokers,
        redisUrl: runtime.redisUrl,
        partitions,
      },
      messageBytes: messageSizes(options.classes),
      ceiling,
      kafkajsBound: kafkajsBound(ceiling, cpus().length, options.models),
      phases,
      idle,
      ...(brokerAlone === undefined ? {} : { brokerAlone }),
      redisMemory: { baselineBytes: baseline.usedMemory, afterPhasesBytes: afterPhases.usedMemory, afterTtlBytes: afterTtl.usedMemory, keysLeftAfterTtl: left },
      cpuProfiles,
      ...(backlog === undefined ? {} : { backlog }),
      metricsCost: await measureMetricsCost(),
    };
    const jsonPath = join(resultsDir, `${stamp}.json`);
    const svgPath = join(resultsDir, `${stamp}-latency.svg`);
    writeFileSync(jsonPath, `${JSON.stringify(report)}\n`);
    writeFileSync(
      svgPath,
      latencyPlot(
        phases.map((p) => ({
          title: `${p.profile}, ${p.load}${p.offeredRate > 0 ? ` ${p.offeredRate}/s` : ''}${options.repeat > 1 ? `, run ${p.repetition}` : ''}: end-to-end latency`,
          points: p.timeline,
        })),
      ),
    );
    say('');
    say(formatReport(report));
    say('');
    say(`results: ${jsonPath}`);
    say(`plot:    ${svgPath}`);
    const failed = phases.filter((p) => p.missing > 0 || p.duplicates > 0 || p.redis.keysLeft.predictionHashes > 0);
    if (failed.length > 0) throw new Error(`missing or duplicated results, or predictions left in Redis, in ${failed.length} phase(s)`);
    const backlogFailed = backlog === undefined ? undefined : backlogProblem(backlog);
    if (backlogFailed !== undefined) throw new Error(backlogFailed);
  } finally {
    loadGenerator?.disconnect();
    redis.disconnect();
    await deleteTopics(kafka, [...new Set([...allTopics(runtime.topics), ...createdTopics])], say);
    rmSync(workDir, { recursive: true, force: true });
    infraDown(started, env);
  }
}

/** Starts one profile's services, warms them up, runs its phases (named `name`), measures it idle, stops them. */
async function runProfile(
  profile: Profile,
  name: string,
  options: BenchOptions,
  ctx: PhaseContext,
  env: NodeJS.ProcessEnv,
  workDir: string,
  profileDir: string | undefined,
): Promise<{ phases: PhaseResult[]; idle?: IdleResult }> {
  say(`${name}: starting ${profile.models.length} workers and ${options.aggregators} aggregator(s) ...`);
  const pipeline = await Pipeline.start(profile, options.aggregators, env, ctx.kafka, workDir, profileDir);
  running = pipeline;
  const phases: PhaseResult[] = [];
  let idle: IdleResult | undefined;
  try {
    const measured: PhaseContext = {
      ...ctx,
      processes: watchedProcesses(pipeline, ctx.loadGenerator, env, env.REDIS_URL ?? DEFAULT_REDIS_URL, (name) => requestsFile(workDir, name)),
    };
    if (options.warmup > 0) {
      const rate = profile.name === 'dead-model' ? options.deadModel.rate : options.rate;
      say(`${name}: warm-up, ${options.warmup} requests at ${rate}/s`);
      await runPhase(measured, name, 'fixed-rate', 0, Math.min(options.warmup, 3 * rate), rate);
    }
    for (let rep = 1; rep <= options.repeat; rep++) {
      if (profile.name === 'dead-model') {
        // One fixed-rate phase of about 20 s: every request waits for its deadline.
        const { rate, deadlineMs } = options.deadModel;
        const count = Math.min(options.requests, 20 * rate);
        say(
          `${name}: fixed-rate ${rate}/s, ${count} requests, one model dead, deadline ${deadlineMs} ms${options.repeat > 1 ? ` (run ${rep}/${options.repeat})` : ''} ...`,
        );
        const result = await runPhase(measured, name, 'fixed-rate', rep, count, rate, deadlineMs);
        const late = result.deadlineLateness;
        say(`  fused ${result.fused}/${result.requests}; after the deadline: p50 ${late?.total.p50} p99 ${late?.total.p99} max ${late?.total.max} ms`);
        phases.push(result);
        continue;
      }
      for (const [load, rate] of [
        ['fixed-rate', options.rate],
        ['saturation', 0],
      ] as const) {
        say(`${name}: ${load}${rate > 0 ? ` ${rate}/s` : ''}, ${options.requests} requests${options.repeat > 1 ? ` (run ${rep}/${options.repeat})` : ''} ...`);
        const result = await runPhase(measured, name, load, rep, options.requests, rate);
        const e2e = result.latency.endToEnd;
        say(
          `  fused ${result.fused}/${result.requests}, ${result.throughput.sustained.toFixed(0)}/s sustained, p50 ${e2e.p50} p99 ${e2e.p99} max ${e2e.max} ms`,
        );
        phases.push(result);
      }
    }
    if (options.idleSeconds > 0) {
      say(`${name}: idle, ${options.idleSeconds} s with no traffic ...`);
      idle = await measureIdle(measured, name, options.idleSeconds);
      say(`  ${idleSummary(idle)}`);
    }
  } finally {
    running = undefined;
    await pipeline.stop();
  }
  return idle === undefined ? { phases } : { phases, idle };
}

/** Summaries of the CPU profiles the services of one profile wrote when they stopped. */
function summariseProfiles(dir: string, profile: string): ProfileSummary[] {
  return readdirSync(dir)
    .filter((f) => f.startsWith(`${profile}-`) && f.endsWith('.cpuprofile'))
    .map((f) => summariseProfile(join(dir, f), f.replace(/\.cpuprofile$/, '')));
}

/** Polls an async condition; false if `timeoutMs` passed first. */
async function poll(done: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 500));
  }
  return true;
}

/** The services of the profile being measured, for stopping them when the bench is interrupted. */
let running: Pipeline | undefined;
/** Stops what the bench started, when it is interrupted. */
let stopInfra: () => void = () => undefined;

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    say(`bench: ${signal}, stopping what it started`);
    void (running?.stop() ?? Promise.resolve()).finally(() => {
      stopInfra();
      process.exit(130);
    });
  });
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench: ${describeError(error)}\n`);
    process.exit(error instanceof ConfigError ? 2 : 1);
  },
);
