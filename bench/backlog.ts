import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import type { Admin, Kafka, Message } from 'kafkajs';
import type { Redis } from 'ioredis';
import { spawnService } from '../services/cli/processes.js';
import { codecs } from '../services/shared/codec.js';
import { IDEMPOTENT_RETRY } from '../services/shared/kafka.js';
import type { FusedPrediction, Prediction } from '../services/shared/records.js';
import { endOffsets, readRanges } from '../services/shared/topic-range.js';
import { allTopics, withPrefix } from '../services/shared/topics.js';
import { SyntheticRunner } from '../services/worker/synthetic-runner.js';
import { deleteTopics } from './kafka-topics.js';
import { brokerKafkaVersion, kafkaStreamsJar, startKafkaStreams } from './kafka-streams-app.js';
import { brokerPid, localRedisPid } from './local-processes.js';
import type { BenchOptions } from './options.js';
import { cpuProfileEnv, loadProfile } from './pipeline.js';
import { cpuSeconds } from './process-stats.js';

/**
 * The backlog comparison: N requests' predictions (3 synthetic models) pre-loaded into a topic of
 * their own, then drained twice, each time exactly once into an output topic of its own: by the
 * aggregator (one process, Redis, a fresh consumer group) and by what a user would build instead,
 * a Kafka Streams application doing the same soft-vote join (bench/kafka-streams, exactly_once_v2,
 * a fresh application id). Both outputs are read back afterwards and compared request by request.
 *
 * Rates run from a joiner's first result to its last, by the broker's append times (the output
 * topics use LogAppendTime), so start-up (JVM, group join, transactions) is left out. CPU is read
 * from /proc over the same window (from the first result seen in the output topic to the last
 * input offset committed), for the joiner, Redis and the broker. Nothing else reads or writes
 * Kafka while a joiner drains: the bench only polls offsets, every POLL_MS.
 */
export const BACKLOG_REQUESTS = 100_000;
const MODELS = ['synthetic-a', 'synthetic-b', 'synthetic-c'];
/** Requests whose predictions are produced together; each model's answers to them in turn, as three workers' rounds land. */
const CHUNK = 1000;
/** Pre-loaded predictions are older than the drain: no request may reach its deadline meanwhile. */
const MIN_DEADLINE_MS = 600_000;
const POLL_MS = 50;
/** Kafka Streams' commit.interval.ms under exactly-once when left unset, as the app leaves it. */
const STREAMS_COMMIT_INTERVAL_MS = 100;

export interface BacklogContext {
  kafka: Kafka;
  redis: Redis;
  env: NodeJS.ProcessEnv;
  brokers: string[];
  partitions: number;
  options: BenchOptions;
  requests: number;
  runId: string;
  workDir: string;
  say: (line: string) => void;
  /** Where the aggregator writes a V8 CPU profile of its drain (--cpu-profile); undefined: none. */
  cpuProfileDir?: string;
}

export interface ProcessCpu {
  name: string;
  cpuSeconds: number;
}

/** One joiner's drain of the backlog. */
export interface JoinerRun {
  joiner: 'aggregator' | 'kafka-streams';
  /** Distinct requests with a result. */
  results: number;
  missing: number;
  /** Results beyond the first for a request. */
  duplicates: number;
  /** Results for request ids that were never pre-loaded. */
  unexpected: number;
  /** Results with status COMPLETE (every model contributed). */
  complete: number;
  /** From the joiner's start to its first result, s. */
  startupSeconds: number;
  /** From its first result to its last (broker append times), s. */
  drainSeconds: number;
  /** Results per second over the drain. */
  rate: number;
  /** CPU over the drain: the joiner, Redis, the broker. */
  cpu: ProcessCpu[];
  /** CPU from the joiner's start to its first result (start-up, group join, first fetches). */
  startupCpu: ProcessCpu[];
  /** CPU of all the processes over the drain per result, microseconds. */
  cpuUsPerResult: number;
  /** Cores busy on the machine over the drain, and of them those busy with work not under test. */
  machine: { busyCores: number; otherCores: number };
}

export interface BacklogResult {
  requests: number;
  predictions: number;
  models: number;
  classes: number;
  partitions: number;
  preload: { seconds: number; predictionsPerSecond: number };
  /** Aggregator processes sharing the partitions (--aggregators). */
  aggregators: number;
  /** The aggregator's join deadline and state TTL for the run. */
  deadlineMs: number;
  stateTtlMs: number;
  kafkaStreams: { version: string; processingGuarantee: 'exactly_once_v2'; commitIntervalMs: number; streamThreads: number; store: string };
  runs: JoinerRun[];
  /** Requests whose two results agree bit for bit (status, label, every probability). */
  identical: number;
  /** Aggregator rate / Kafka Streams rate. */
  rateRatio: number;
  /** Aggregator CPU per result / Kafka Streams CPU per result. */
  cpuRatio: number;
  loadAverage1m: { start: number; end: number };
}

/** Children of the comparison still running, stopped if the bench is interrupted. */
const running = new Set<ChildProcess>();
let stopsChildren = false;

function track(child: ChildProcess): void {
  running.add(child);
  if (stopsChildren) return;
  stopsChildren = true;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      for (const c of running) c.kill('SIGTERM');
    });
  }
}

export async function runBacklog(ctx: BacklogContext): Promise<BacklogResult> {
  const { kafka, say, requests } = ctx;
  const loadStart = loadavg()[0] ?? 0;
  const jar = kafkaStreamsJar(say);
  const prefix = `${ctx.runId}-backlog-`;
  const topics = withPrefix(prefix);
  const streamsOutput = `${prefix}kafka-streams-fused`;
  const namespace = `${ctx.runId}-backlog`;
  try {
    await createBacklogTopics(kafka, allTopics(topics), [topics.fused, streamsOutput], ctx.partitions);
    say(`backlog: pre-loading ${requests} requests (${requests * MODELS.length} predictions, ${ctx.partitions} partitions) ...`);
    const ids = Array.from({ length: requests }, (_, i) => `${ctx.runId}-${i}`);
    const preload = await preloadPredictions(kafka, topics.predictions, ids, ctx.options.classes);
    const inputEnds = await endOffsets(kafka, topics.predictions);
    const deadlineMs = Math.max(ctx.options.deadlineMs, MIN_DEADLINE_MS);
    const stateTtlMs = Math.max(ctx.options.stateTtlMs, deadlineMs + 60_000);
    const profile = await loadProfile('synthetic', { ...ctx.options, deadlineMs, stateTtlMs }, say);
    const configPath = join(ctx.workDir, 'aggregator-backlog.json');
    // Rebuilding lost state must look back past the deadline too (the config refuses less).
    const config = { ...profile.config, restoreHorizonMs: Math.max(profile.config.restoreHorizonMs, stateTtlMs) };
    writeFileSync(configPath, `${JSON.stringify(config, null, 2)}\n`);

    say('backlog: the aggregator drains it (exactly once, a fresh consumer group) ...');
    const group = `${ctx.runId}.aggregator.backlog`;
    const aggregatorEnv = { ...ctx.env, ES_TOPIC_PREFIX: prefix, ES_REDIS_NAMESPACE: namespace, ES_AGGREGATOR_GROUP: group, ES_METRICS_PORT: '0' };
    const profiled = cpuProfileEnvFor(ctx, aggregatorEnv, '');
    // --aggregators N: N processes share the partitions (and the machine's cores).
    const instances = Array.from({ length: ctx.options.aggregators }, (_, i) => (ctx.options.aggregators === 1 ? '' : `-${i + 1}`));
    const aggregator = await drain(ctx, 'aggregator', group, topics.predictions, topics.fused, inputEnds, () =>
      instances.map((suffix) => {
        const env = suffix === '' ? profiled : cpuProfileEnvFor(ctx, aggregatorEnv, suffix);
        const s = spawnService(`bench-backlog-aggregator${suffix}`, ['aggregator', '--config', configPath], {
          ...env,
          ES_INSTANCE_ID: `bench-backlog${suffix}`,
        });
        return { child: s.child, logFile: s.logFile };
      }),
    );
    await deleteKeys(ctx.redis, namespace);

    say('backlog: the Kafka Streams app drains it (exactly_once_v2, a fresh application id) ...');
    const applicationId = `${prefix}kafka-streams`;
    const stateDir = join(ctx.workDir, 'kafka-streams-state');
    mkdirSync(stateDir, { recursive: true });
    const models = profile.config.models;
    const classes = profile.config.classes;
    const streams = await drain(ctx, 'kafka-streams', applicationId, topics.predictions, streamsOutput, inputEnds, () =>
      startKafkaStreams(jar, 'bench-backlog-kafka-streams', {
        bootstrap: ctx.brokers.join(','),
        applicationId,
        input: topics.predictions,
        output: streamsOutput,
        models,
        classes,
        stateDir,
      }),
    );

    say('backlog: reading both outputs back ...');
    const [fromAggregator, fromStreams] = [await readOutput(kafka, topics.fused), await readOutput(kafka, streamsOutput)];
    const expected = new Set(ids);
    const runs = [summarise(aggregator, fromAggregator, expected), summarise(streams, fromStreams, expected)];
    const [a, s] = runs as [JoinerRun, JoinerRun];
    return {
      requests,
      predictions: requests * MODELS.length,
      models: MODELS.length,
      classes: ctx.options.classes,
      partitions: ctx.partitions,
      preload,
      aggregators: ctx.options.aggregators,
      deadlineMs,
      stateTtlMs,
      kafkaStreams: {
        version: brokerKafkaVersion(),
        processingGuarantee: 'exactly_once_v2',
        commitIntervalMs: STREAMS_COMMIT_INTERVAL_MS,
        streamThreads: 1,
        store: 'persistent (RocksDB) with changelog',
      },
      runs,
      identical: identicalResults(fromAggregator, fromStreams),
      rateRatio: a.rate / s.rate,
      cpuRatio: a.cpuUsPerResult / s.cpuUsPerResult,
      loadAverage1m: { start: loadStart, end: loadavg()[0] ?? 0 },
    };
  } finally {
    await deleteKeys(ctx.redis, namespace);
    await deleteTopics(kafka, [...new Set([...(await topicsStartingWith(kafka, prefix)), ...allTopics(topics), streamsOutput])], say);
  }
}

/** The run's topics, including those Kafka Streams created (its changelog); none if they cannot be listed. */
async function topicsStartingWith(kafka: Kafka, prefix: string): Promise<string[]> {
  const admin = kafka.admin();
  try {
    await admin.connect();
    return (await retrying(() => admin.listTopics(), 10_000)).filter((t) => t.startsWith(prefix));
  } catch {
    return [];
  } finally {
    await admin.disconnect();
  }
}

/** What is wrong with a backlog run, if anything: lost, repeated, incomplete or differing results. */
export function backlogProblem(r: BacklogResult): string | undefined {
  const problems = r.runs.flatMap((run) => {
    const p: string[] = [];
    if (run.missing > 0 || run.duplicates > 0 || run.unexpected > 0)
      p.push(`${run.joiner}: ${run.missing} missing, ${run.duplicates} duplicates, ${run.unexpected} unexpected`);
    if (run.complete !== run.results) p.push(`${run.joiner}: ${run.results - run.complete} results not COMPLETE`);
    return p;
  });
  if (r.identical !== r.requests) problems.push(`only ${r.identical} of ${r.requests} results are the same bit for bit on both sides`);
  return problems.length === 0 ? undefined : `backlog: ${problems.join('; ')}`;
}

/**
 * The run's topics; the output topics are stamped by the broker (LogAppendTime), so their
 * timestamps say when each result was written. Waits until every one answers an offsets request.
 */
async function createBacklogTopics(kafka: Kafka, names: string[], outputs: string[], partitions: number): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const appendTime = [{ name: 'message.timestamp.type', value: 'LogAppendTime' }];
    const topics = [...new Set([...names, ...outputs])].map((topic) => ({
      topic,
      numPartitions: partitions,
      configEntries: outputs.includes(topic) ? appendTime : [],
    }));
    await admin.createTopics({ topics, waitForLeaders: false });
    for (const { topic } of topics) await retrying(() => admin.fetchTopicOffsets(topic), 30_000);
  } finally {
    await admin.disconnect();
  }
}

/** `f()`, tried again every 100 ms on any error until `ms` passed (a new topic or group coordinator takes a moment). */
async function retrying<T>(f: () => Promise<T>, ms: number): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    try {
      return await f();
    } catch (error) {
      if (Date.now() > until) throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/**
 * Every request's three predictions as the workers write them (codecs.prediction, keyed by request
 * id, so all of a request's answers share a partition), with answers of the synthetic models.
 */
async function preloadPredictions(kafka: Kafka, topic: string, ids: readonly string[], classes: number): Promise<BacklogResult['preload']> {
  const runners = MODELS.map((id) => new SyntheticRunner(id, classes));
  const requests = ids.length;
  const producer = kafka.producer({ idempotent: true, retry: IDEMPOTENT_RETRY });
  await producer.connect();
  const started = performance.now();
  try {
    for (let start = 0, chunk = 0; start < requests; start += CHUNK, chunk++) {
      const end = Math.min(requests, start + CHUNK);
      const now = Date.now();
      const messages: Message[] = [];
      for (let m = 0; m < runners.length; m++) {
        const runner = runners[(m + chunk) % runners.length] as SyntheticRunner;
        for (let i = start; i < end; i++) {
          const answer = await runner.predict([i % 97, (i * 31) % 101, i / 7, (i * 13) % 89]);
          const p: Prediction = {
            requestId: ids[i] as string,
            modelId: runner.modelId,
            modelVersion: runner.modelVersion,
            status: 'OK',
            probabilities: 'probabilities' in answer ? answer.probabilities : null,
            value: null,
            error: null,
            requestCreatedAtMs: now,
            deadlineMs: null,
            receivedAtMs: now,
            inferenceMicros: 0,
          };
          messages.push({ key: p.requestId, value: codecs.prediction.encode(p), headers: codecs.prediction.headers });
        }
      }
      await producer.send({ topic, messages, acks: -1 });
    }
  } finally {
    await producer.disconnect();
  }
  const seconds = (performance.now() - started) / 1000;
  return { seconds, predictionsPerSecond: (requests * runners.length) / seconds };
}

/** What a drain measured, before the output is read back. */
export interface Drained {
  joiner: JoinerRun['joiner'];
  startedAtMs: number;
  cpu: ProcessCpu[];
  startupCpu: ProcessCpu[];
  /** Over the same window as `cpu`: cores busy on the machine, and of them those busy with other work. */
  machine: { busyCores: number; otherCores: number };
}

/** The processes whose CPU is read: the joiner (its pid once started), Redis, the broker. */
/** CPU seconds of each named group of processes, summed. */
function cpuOfAll(groups: readonly { name: string; pids: readonly (number | undefined)[] }[]): Map<string, number> {
  return new Map(
    groups.map(({ name, pids }) => [name, pids.reduce<number>((sum, pid) => sum + (pid === undefined ? Number.NaN : (cpuSeconds(pid) ?? Number.NaN)), 0)]),
  );
}

interface MachineTicks {
  atMs: number;
  busy: number;
  total: number;
}

/** Busy and total jiffies of the whole machine (/proc/stat). */
function machineTicks(): MachineTicks {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  return { atMs: Date.now(), busy: total - (v[3] ?? 0) - (v[4] ?? 0), total };
}

/** Cores busy over a window, every process counted, and of them the cores not used by `ours`. */
function machineBetween(from: MachineTicks, to: MachineTicks, ours: readonly ProcessCpu[]): Drained['machine'] {
  const seconds = (to.atMs - from.atMs) / 1000;
  if (!(seconds > 0) || to.total <= from.total) return { busyCores: Number.NaN, otherCores: Number.NaN };
  const busyCores = ((to.busy - from.busy) / (to.total - from.total)) * cpus().length;
  const ourCores = ours.reduce((a, p) => a + (Number.isFinite(p.cpuSeconds) ? p.cpuSeconds : 0), 0) / seconds;
  return { busyCores, otherCores: Math.max(0, busyCores - ourCores) };
}

function cpuBetween(from: Map<string, number>, to: Map<string, number>): ProcessCpu[] {
  return [...to].map(([name, t]) => ({ name, cpuSeconds: t - (from.get(name) ?? Number.NaN) }));
}

/**
 * Starts a joiner and waits until its group committed the end offset of every input partition (so
 * every result is committed), reading CPU at its start, at its first result and at the end. Stops it.
 */
/** `env` for an aggregator of the drain, profiled if --cpu-profile asked for it. */
function cpuProfileEnvFor(ctx: BacklogContext, env: NodeJS.ProcessEnv, suffix: string): NodeJS.ProcessEnv {
  return ctx.cpuProfileDir === undefined ? env : cpuProfileEnv(env, join(ctx.cpuProfileDir, `backlog-aggregator${suffix}.cpuprofile`));
}

async function drain(
  ctx: BacklogContext,
  joiner: JoinerRun['joiner'],
  group: string,
  input: string,
  output: string,
  inputEnds: Map<number, bigint>,
  start: () => { child: ChildProcess; logFile: string } | { child: ChildProcess; logFile: string }[],
): Promise<Drained> {
  const admin = ctx.kafka.admin();
  await admin.connect();
  const infra = [
    { name: 'redis', pids: [localRedisPid(ctx.env.REDIS_URL ?? 'redis://127.0.0.1:6379')] },
    { name: 'kafka', pids: [brokerPid(ctx.env)] },
  ];
  const atStart = cpuOfAll([{ name: joiner, pids: [undefined] }, ...infra]);
  const startedAtMs = Date.now();
  const started = start();
  const processes = Array.isArray(started) ? started : [started];
  const children = processes.map((p) => p.child);
  for (const child of children) track(child);
  const exited = Promise.all(children.map((child) => new Promise<void>((resolve) => child.once('exit', () => resolve()))));
  atStart.set(joiner, 0);
  const pids = [{ name: joiner, pids: children.map((c) => c.pid) }, ...infra];
  const timeoutAt = Date.now() + 120_000 + 3 * ctx.requests;
  const snapshot = () => ({ cpu: cpuOfAll(pids), ticks: machineTicks() });
  let atFirst: ReturnType<typeof snapshot> | undefined;
  try {
    for (;;) {
      const gone = processes.find((p) => p.child.exitCode !== null);
      if (gone !== undefined) throw new Error(`${joiner} exited (code ${gone.child.exitCode}) before draining the backlog; see ${gone.logFile}`);
      if (Date.now() > timeoutAt) throw new Error(`${joiner} did not drain the backlog in time; see ${processes.map((p) => p.logFile).join(', ')}`);
      // A group's coordinator may still be loading (a fresh broker): a failed poll is tried again.
      if (atFirst === undefined && (await anyRecords(admin, output).catch(() => false))) atFirst = snapshot();
      if (await committedAll(admin, group, input, inputEnds).catch(() => false)) break;
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    const atEnd = snapshot();
    const first = atFirst ?? atEnd;
    const cpu = cpuBetween(first.cpu, atEnd.cpu);
    return { joiner, startedAtMs, cpu, startupCpu: cpuBetween(atStart, first.cpu), machine: machineBetween(first.ticks, atEnd.ticks, cpu) };
  } finally {
    await admin.disconnect();
    for (const child of children) child.kill('SIGTERM');
    const kill = setTimeout(() => {
      for (const child of children) child.kill('SIGKILL');
    }, 30_000);
    await exited;
    clearTimeout(kill);
    for (const child of children) running.delete(child);
  }
}

async function anyRecords(admin: Admin, topic: string): Promise<boolean> {
  return (await admin.fetchTopicOffsets(topic)).some((o) => BigInt(o.high) > 0n);
}

async function committedAll(admin: Admin, groupId: string, topic: string, ends: Map<number, bigint>): Promise<boolean> {
  const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
  const committed = new Map((offsets?.partitions ?? []).map((p) => [p.partition, BigInt(p.offset)]));
  return [...ends].every(([partition, end]) => (committed.get(partition) ?? -1n) >= end);
}

/** One request's result in an output topic, with the broker's append time and how often it came. */
export interface OutputRecord {
  value: Buffer;
  appendedAtMs: number;
  copies: number;
}

/** Every committed result of an output topic, by request id. */
async function readOutput(kafka: Kafka, topic: string): Promise<Map<string, OutputRecord>> {
  const ends = await endOffsets(kafka, topic);
  const out = new Map<string, OutputRecord>();
  const ranges = new Map([...ends].map(([p, to]) => [p, { from: 0n, to }]));
  await readRanges(
    kafka,
    topic,
    ranges,
    (_, m) => {
      if (m.key === null || m.value === null) return;
      const id = m.key.toString();
      const seen = out.get(id);
      if (seen === undefined) out.set(id, { value: m.value, appendedAtMs: Number(m.timestamp), copies: 1 });
      else seen.copies++;
    },
    300_000,
  );
  return out;
}

/** A joiner's figures from its drain and its output topic. */
export function summarise(d: Drained, output: ReadonlyMap<string, OutputRecord>, expected: ReadonlySet<string>): JoinerRun {
  let first = Infinity;
  let last = -Infinity;
  let duplicates = 0;
  let unexpected = 0;
  let complete = 0;
  for (const [id, r] of output) {
    first = Math.min(first, r.appendedAtMs);
    last = Math.max(last, r.appendedAtMs);
    duplicates += r.copies - 1;
    if (!expected.has(id)) unexpected++;
    else if (codecs.fusedPrediction.decode(r.value).status === 'COMPLETE') complete++;
  }
  const results = output.size - unexpected;
  const drainSeconds = (last - first) / 1000;
  const total = d.cpu.reduce((a, p) => a + (Number.isFinite(p.cpuSeconds) ? p.cpuSeconds : 0), 0);
  return {
    joiner: d.joiner,
    results,
    missing: expected.size - results,
    duplicates,
    unexpected,
    complete,
    startupSeconds: (first - d.startedAtMs) / 1000,
    drainSeconds,
    rate: drainSeconds > 0 ? (results - 1) / drainSeconds : Number.NaN,
    cpu: d.cpu,
    startupCpu: d.startupCpu,
    cpuUsPerResult: results > 0 ? (total * 1e6) / results : Number.NaN,
    machine: d.machine,
  };
}

/** Requests whose results agree bit for bit on both sides: status, label and every probability. */
export function identicalResults(a: ReadonlyMap<string, OutputRecord>, b: ReadonlyMap<string, OutputRecord>): number {
  let identical = 0;
  for (const [id, x] of a) {
    const y = b.get(id);
    if (y !== undefined && sameAnswer(codecs.fusedPrediction.decode(x.value), codecs.fusedPrediction.decode(y.value))) identical++;
  }
  return identical;
}

function sameAnswer(a: FusedPrediction, b: FusedPrediction): boolean {
  if (a.status !== b.status || a.label !== b.label) return false;
  const p = a.probabilities;
  const q = b.probabilities;
  if (p === null || q === null) return p === q;
  return p.length === q.length && p.every((x, i) => Object.is(x, q[i]));
}

/** Removes a namespace's join state (the state TTL of the run is long). */
async function deleteKeys(redis: Redis, namespace: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${namespace}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== '0');
}
