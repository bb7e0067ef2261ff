import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import type { Kafka } from 'kafkajs';
import { describeError } from '../services/shared/errors.js';
import { RedisKeys } from '../services/shared/redis-keys.js';
import { DEFAULT_REDIS_URL } from '../services/shared/runtime-config.js';
import { allTopics, type Topics, withPrefix } from '../services/shared/topics.js';
import { endOffsets, FusedCollector, messagesBetween } from './collector.js';
import { createTopics } from './kafka-topics.js';
import { sendLoad } from './load-driver.js';
import { watchedProcesses } from './local-processes.js';
import { messageSizes } from './message-sizes.js';
import type { BenchOptions } from './options.js';
import { type PhaseContext, type PhaseResult, runPhase } from './phase.js';
import { loadProfile, Pipeline, type Profile, requestsFile } from './pipeline.js';
import type { ProcessUsage } from './process-stats.js';
import { keysLeft, redisSnapshot } from './redis-stats.js';
import { cpuUsPerFused, isBenchProcess } from './report.js';
import { formatScaling, type OpenRequestsRow, type ScalingOptions, type ScalingReport, type ScalingRow, scalingFailures } from './scaling-table.js';

/**
 * `npm run bench -- --scaling`: how the pipeline scales with the number of models, aggregator
 * instances and partitions, to size a deployment. Each configuration of the matrix gets topics,
 * Redis keys and groups of its own and a fresh pipeline (synthetic models, one process each), is
 * warmed up, then measured in one saturation phase. Then Redis memory is read with requests held
 * open in the join: three models expected, two started, a deadline far away, so every request
 * waits with two predictions joined; used_memory is read once the aggregator has joined (and
 * committed) every prediction written.
 */
export interface ScalingContext {
  kafka: Kafka;
  redis: Redis;
  env: NodeJS.ProcessEnv;
  runId: string;
  loadGenerator: ChildProcess;
  workDir: string;
  resultsDir: string;
  stamp: string;
  /** Partitions the open-request measurement's topics get. */
  partitions: number;
  /** Every topic created is added here, for deletion at the end. */
  createdTopics: string[];
  say: (line: string) => void;
  /** The pipeline running now (undefined once stopped), for stopping it when the bench is interrupted. */
  track: (pipeline: Pipeline | undefined) => void;
}

interface Configuration {
  models: number;
  aggregators: number;
  partitions: number;
}

/** Runs the matrix and the memory measurement, prints and writes them; throws if any must fail the run. */
export async function runScaling(options: BenchOptions, scaling: ScalingOptions, ctx: ScalingContext): Promise<void> {
  const startedAt = new Date();
  const loadStart = loadavg()[0] ?? 0;
  const rows: ScalingRow[] = [];
  for (const models of scaling.models)
    for (const aggregators of scaling.aggregators)
      for (const partitions of scaling.partitions) rows.push(await measureConfiguration({ models, aggregators, partitions }, options, ctx));
  const open = scaling.openRequests.length > 0 ? await measureOpenRequests(scaling.openRequests, options, ctx) : undefined;
  const report: ScalingReport = {
    startedAt: startedAt.toISOString(),
    options: { ...options },
    environment: {
      node: process.version,
      cpus: cpus().length,
      loadAverage1mStart: loadStart,
      loadAverage1mEnd: loadavg()[0] ?? 0,
      kafkaBrokers: (ctx.env.KAFKA_BROKERS ?? '').split(','),
      redisUrl: ctx.env.REDIS_URL ?? DEFAULT_REDIS_URL,
    },
    messageBytes: { prediction: messageSizes(options.classes).prediction },
    rows,
    openRequests: open?.rows ?? [],
    ...(open === undefined ? {} : { openRequestsBaselineBytes: open.baselineBytes }),
  };
  const jsonPath = join(ctx.resultsDir, `${ctx.stamp}-scaling.json`);
  writeFileSync(jsonPath, `${JSON.stringify(report)}\n`);
  ctx.say('');
  ctx.say(formatScaling(report));
  if (open?.sample !== undefined) ctx.say(open.sample);
  ctx.say('');
  ctx.say(`results: ${jsonPath}`);
  const failures = scalingFailures(report);
  if (failures.length > 0) throw new Error(`scaling: ${failures.join('; ')}`);
}

/** A fresh pipeline of one configuration: warm-up, one saturation phase, stop. Never throws. */
async function measureConfiguration(c: Configuration, options: BenchOptions, ctx: ScalingContext): Promise<ScalingRow> {
  const label = `m${c.models}-a${c.aggregators}-p${c.partitions}`;
  ctx.say(`${label}: ${c.models} models, ${c.aggregators} aggregator(s), ${c.partitions} partitions ...`);
  try {
    const profile = await loadProfile('synthetic', { ...options, models: c.models }, ctx.say);
    return await withPipeline(
      label,
      c,
      { ...profile, config: { ...profile.config, delivery: options.deliveries[0] ?? 'exactly-once' } },
      ctx,
      async (measured) => {
        let warm: PhaseResult | undefined;
        if (options.warmup > 0) warm = await runPhase(measured, label, 'fixed-rate', 0, Math.min(options.warmup, 3 * options.rate), options.rate);
        const result = await runPhase(measured, label, 'saturation', 1, options.requests, 0);
        const row = scalingRow(c, result, warm);
        ctx.say(
          `  fused ${result.fused}/${result.requests}, ${row.fusedPerSecond.toFixed(0)}/s, ${row.cpuUs.total.toFixed(0)} CPU us per result; load average ${row.machine.loadAverage1m.toFixed(1)}`,
        );
        return row;
      },
    );
  } catch (error) {
    ctx.say(`  failed: ${describeError(error)}`);
    const none = { total: Number.NaN, workers: Number.NaN, aggregators: Number.NaN, broker: Number.NaN, redis: Number.NaN, client: Number.NaN };
    return {
      ...c,
      requests: options.requests,
      fusedPerSecond: Number.NaN,
      sustainedPerSecond: Number.NaN,
      missing: options.requests,
      duplicates: 0,
      predictionHashesLeft: 0,
      cpuUs: none,
      machine: { busyCores: Number.NaN, otherCores: Number.NaN, loadAverage1m: loadavg()[0] ?? 0 },
      error: describeError(error),
    };
  }
}

/**
 * Topics (every one with `c.partitions` partitions), a Redis namespace and groups named after
 * `label`, a collector and the pipeline; runs `body`, then stops everything and deletes the
 * namespace's keys, so nothing of one configuration reaches the next (nor its memory readings).
 */
async function withPipeline<T>(
  label: string,
  c: Configuration,
  profile: Profile,
  ctx: ScalingContext,
  body: (measured: PhaseContext, topics: Topics) => Promise<T>,
): Promise<T> {
  const prefix = `${ctx.runId}-${label}-`;
  const topics = withPrefix(prefix);
  await createTopics(ctx.kafka, topics, c.partitions);
  ctx.createdTopics.push(...allTopics(topics));
  const redisNamespace = `${ctx.runId}-${label}`;
  const env: NodeJS.ProcessEnv = {
    ...ctx.env,
    ES_TOPIC_PREFIX: prefix,
    ES_REDIS_NAMESPACE: redisNamespace,
    ES_AGGREGATOR_GROUP: `${ctx.runId}.aggregator.${label}`,
  };
  const collector = await FusedCollector.start(ctx.kafka, topics.fused, `${ctx.runId}.collector.${label}`);
  try {
    const pipeline = await Pipeline.start(profile, c.aggregators, env, ctx.kafka, ctx.workDir);
    ctx.track(pipeline);
    try {
      const processes = watchedProcesses(pipeline, ctx.loadGenerator, env, env.REDIS_URL ?? DEFAULT_REDIS_URL, (name) => requestsFile(ctx.workDir, name));
      return await body(
        { kafka: ctx.kafka, redis: ctx.redis, topics, redisNamespace, loadGenerator: ctx.loadGenerator, collector, runId: ctx.runId, processes },
        topics,
      );
    } finally {
      ctx.track(undefined);
      await pipeline.stop();
    }
  } finally {
    await collector.stop();
    await deleteNamespace(ctx.redis, new RedisKeys(redisNamespace).all());
  }
}

/** The table's row of one configuration: its saturation phase, and the warm-up's losses. */
function scalingRow(c: Configuration, result: PhaseResult, warm: PhaseResult | undefined): ScalingRow {
  const sum = (match: (p: ProcessUsage) => boolean) => {
    const matched = result.processes.filter(match);
    return matched.length === 0
      ? Number.NaN
      : cpuUsPerFused(
          matched.reduce((a, p) => a + p.cpuSeconds, 0),
          result.fused,
        );
  };
  return {
    ...c,
    requests: result.requests,
    fusedPerSecond: result.throughput.overall,
    sustainedPerSecond: result.throughput.sustained,
    missing: result.missing + (warm?.missing ?? 0),
    duplicates: result.duplicates + (warm?.duplicates ?? 0),
    predictionHashesLeft: result.redis.keysLeft.predictionHashes,
    cpuUs: {
      total: sum(() => true),
      workers: sum((p) => p.name.startsWith('worker-')),
      aggregators: sum((p) => p.name.startsWith('aggregator')),
      broker: sum((p) => p.name === 'kafka'),
      redis: sum((p) => p.name === 'redis'),
      client: sum((p) => isBenchProcess(p.name)),
    },
    machine: { busyCores: result.machine.busyCores, otherCores: result.machine.otherCores, loadAverage1m: result.machine.loadAverage1mEnd },
  };
}

/** The open requests' deadline: far beyond the measurement, so none expires during it. */
const OPEN_DEADLINE_MS = 30 * 60_000;
/** Gives up when the join made no progress for this long. */
const OPEN_STALL_MS = 60_000;

/**
 * Redis used_memory with `counts` requests (cumulative, ascending) waiting in the join: three
 * synthetic models expected, two answering, one aggregator, the breaker never opening.
 */
async function measureOpenRequests(
  counts: number[],
  options: BenchOptions,
  ctx: ScalingContext,
): Promise<{ rows: OpenRequestsRow[]; baselineBytes: number; sample?: string }> {
  const c: Configuration = { models: 3, aggregators: 1, partitions: ctx.partitions };
  const label = 'open-requests';
  ctx.say(`${label}: Redis memory with ${counts.join(', ')} requests waiting for a model that never answers (${c.partitions} partitions) ...`);
  const base = await loadProfile('dead-model', { ...options, models: c.models }, ctx.say);
  const profile: Profile = {
    ...base,
    config: { ...base.config, deadlineMs: OPEN_DEADLINE_MS, stateTtlMs: 2 * OPEN_DEADLINE_MS, restoreHorizonMs: 2 * OPEN_DEADLINE_MS },
  };
  const answering = profile.models.length;
  return withPipeline(label, c, profile, ctx, async (measured, topics) => {
    const groupId = `${ctx.runId}.aggregator.${label}`;
    const fusedFrom = await endOffsets(ctx.kafka, topics.fused);
    const baseline = (await redisSnapshot(ctx.redis)).usedMemory;
    const rows: OpenRequestsRow[] = [];
    let sent = 0;
    for (const open of counts) {
      await sendLoad(ctx.loadGenerator, { kind: 'run', topic: topics.features, prefix: `${ctx.runId}-${label}-${open}-`, count: open - sent, rate: 0 });
      sent = open;
      await joined(ctx.kafka, topics.predictions, groupId, answering * open);
      const usedMemoryBytes = (await redisSnapshot(ctx.redis)).usedMemory;
      const left = await keysLeft(ctx.redis, measured.redisNamespace);
      const fused = messagesBetween(fusedFrom, await endOffsets(ctx.kafka, topics.fused));
      const growthBytes = usedMemoryBytes - baseline;
      rows.push({
        open,
        predictionsPerRequest: answering,
        usedMemoryBytes,
        growthBytes,
        bytesPerRequest: growthBytes / open,
        deadlineEntries: left.deadlineEntries,
        fused,
      });
      ctx.say(`  ${open} open: used_memory +${(growthBytes / 1024).toFixed(0)} KiB, ${(growthBytes / open).toFixed(0)} B per open request`);
    }
    const sample = await sampleRequest(ctx.redis, measured.redisNamespace);
    return sample === undefined ? { rows, baselineBytes: baseline } : { rows, baselineBytes: baseline, sample };
  });
}

/**
 * Waits until the predictions topic holds at least `predictions` records and the aggregator group
 * has committed every partition up to its end: every prediction written is joined in Redis (the
 * aggregator joins a batch before the transaction that commits its offsets).
 */
async function joined(kafka: Kafka, topic: string, groupId: string, predictions: number): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    let progress = '';
    let progressAt = Date.now();
    for (;;) {
      const ends = new Map((await admin.fetchTopicOffsets(topic)).map((o) => [o.partition, BigInt(o.high)]));
      const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
      const at = new Map((committed?.partitions ?? []).map((p) => [p.partition, BigInt(p.offset)]));
      const written = [...ends.values()].reduce((a, b) => a + b, 0n);
      if (written >= BigInt(predictions) && [...ends].every(([p, end]) => end === 0n || at.get(p) === end)) return;
      const now = `${written} ${[...at.values()].join(',')}`;
      if (now !== progress) [progress, progressAt] = [now, Date.now()];
      if (Date.now() - progressAt > OPEN_STALL_MS)
        throw new Error(`the join made no progress for ${OPEN_STALL_MS / 1000} s: ${written} of ${predictions} predictions written, committed ${progress}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    await admin.disconnect();
  }
}

/** One open request's keys as Redis sizes them (MEMORY USAGE), as a line for the report. */
async function sampleRequest(redis: Redis, namespace: string): Promise<string | undefined> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${namespace}:*:m`, 'COUNT', 1000);
    cursor = next;
    const predictionsKey = keys[0];
    if (predictionsKey !== undefined) {
      const stateKey = predictionsKey.slice(0, -':m'.length);
      const usage = (key: string) => redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0');
      const [state, predictions] = await Promise.all([usage(stateKey), usage(predictionsKey)]);
      return `one open request (MEMORY USAGE): join state hash ${state} B, predictions hash ${predictions} B; the rest is its deadline index entry and Redis's key table`;
    }
  } while (cursor !== '0');
  return undefined;
}

/** Deletes every key matching `pattern` (one configuration's namespace). */
async function deleteNamespace(redis: Redis, pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== '0');
}
