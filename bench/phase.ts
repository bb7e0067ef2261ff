import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import type { Kafka } from 'kafkajs';
import { waitFor } from '../services/cli/stream-client.js';
import type { Topics } from '../services/shared/topics.js';
import { endOffsets, type FusedCollector, messagesBetween, readPredictions } from './collector.js';
import { type DeadlineLateness, deadlineLateness } from './deadline-lateness.js';
import { type PhaseLatency, phaseLatency, type Throughput, throughput } from './latency.js';
import { sendLoad } from './load-driver.js';
import { type MachineUsage, type ProcessUsage, ProcessSampler, type WatchedProcess } from './process-stats.js';
import { type KeysLeft, keysLeft, type RedisDelta, redisDelta, redisSnapshot } from './redis-stats.js';

export type LoadKind = 'fixed-rate' | 'saturation';

/** What a phase runs against: the live pipeline, the load generator, the collector and Redis. */
export interface PhaseContext {
  kafka: Kafka;
  redis: Redis;
  topics: Topics;
  redisNamespace: string;
  loadGenerator: ChildProcess;
  collector: FusedCollector;
  processes: WatchedProcess[];
  /** Used for group ids and request ids, unique per bench run. */
  runId: string;
}

export interface PhaseResult {
  profile: string;
  load: LoadKind;
  repetition: number;
  /** Requests per second offered; 0 at saturation. */
  offeredRate: number;
  requests: number;
  /** Rate at which the load generator managed to produce. */
  producedRate: number;
  fused: number;
  missing: number;
  duplicates: number;
  statuses: { complete: number; partial: number; insufficient: number };
  deadLetters: number;
  throughput: Throughput;
  latency: PhaseLatency;
  redis: RedisDelta & {
    perFused: { scriptCalls: number; roundTrips: number; executedCommands: number; scriptMs: number };
    keysLeft: KeysLeft;
    usedMemoryBytes: number;
  };
  processes: ProcessUsage[];
  /**
   * Kafka requests each counting process sent per fused result, in total and by API, and the mean
   * time an API's request waited for its answer (queueing in the client included), ms.
   */
  kafkaRequests: { process: string; perFused: number; byApi: Record<string, number>; meanWaitMs: Record<string, number> }[];
  machine: MachineUsage;
  /** End-to-end latency by creation time, for the plot. */
  timeline: { t: number; ms: number }[];
  /** Phases where every request waits for its deadline (a dead model): how late it ended. */
  deadlineLateness?: DeadlineLateness;
}

/** A phase gives up when no new result arrived for this long (a stalled or crashed service). */
const STALL_MS = 30_000;
/** After the last result, duplicates (if the pipeline made any) get this long to show up. */
const DUPLICATE_GRACE_MS = 1000;
/** Lets the aggregator's post-commit clean-up of the last batch reach Redis before the reading. */
const SETTLE_MS = 250;

/**
 * One measured phase: `count` requests at `rate` (0: as fast as the producer goes), waited for
 * until every result is in, then everything is read back and computed.
 */
export async function runPhase(
  ctx: PhaseContext,
  profile: string,
  load: LoadKind,
  repetition: number,
  count: number,
  rate: number,
  deadlineMs?: number,
): Promise<PhaseResult> {
  const prefix = `${ctx.runId}-${profile}-${load}-${repetition}-`;
  ctx.collector.expect(prefix);
  const [predictionsFrom, deadLettersFrom, redisBefore] = await Promise.all([
    endOffsets(ctx.kafka, ctx.topics.predictions),
    endOffsets(ctx.kafka, ctx.topics.deadLetters),
    redisSnapshot(ctx.redis),
  ]);
  const requestsBefore = await readRequestCounts(ctx.processes);
  const sampler = new ProcessSampler(ctx.processes);
  sampler.start();
  const sent = await sendLoad(ctx.loadGenerator, { kind: 'run', topic: ctx.topics.features, prefix, count, rate });
  const complete = await waitForResults(ctx.collector, count);
  await new Promise((r) => setTimeout(r, SETTLE_MS));
  const usage = sampler.stop();
  const requestsAfter = await readRequestCounts(ctx.processes);
  const redisAfter = await redisSnapshot(ctx.redis);
  await new Promise((r) => setTimeout(r, complete ? DUPLICATE_GRACE_MS : 0));
  const [predictionsTo, deadLettersTo] = await Promise.all([endOffsets(ctx.kafka, ctx.topics.predictions), endOffsets(ctx.kafka, ctx.topics.deadLetters)]);
  const deadlineRecords = new Map<string, number>();
  const predictions = await readPredictions(
    ctx.kafka,
    ctx.topics.predictions,
    predictionsFrom,
    predictionsTo,
    `${ctx.runId}.predictions.${profile}.${load}.${repetition}`,
    deadlineRecords,
  );

  const ids = Array.from({ length: count }, (_, i) => `${prefix}${i}`);
  const statuses = { complete: 0, partial: 0, insufficient: 0 };
  let fused = 0;
  let duplicates = 0;
  const timeline: { t: number; ms: number }[] = [];
  const start = sent.firstSendMs;
  for (const id of ids) {
    const f = ctx.collector.seen.get(id);
    if (f === undefined) continue;
    fused++;
    duplicates += f.copies - 1;
    if (f.status === 'COMPLETE') statuses.complete++;
    else if (f.status === 'PARTIAL') statuses.partial++;
    else statuses.insufficient++;
    timeline.push({ t: (f.requestCreatedAtMs - start) / 1000, ms: f.receivedAtMs - f.requestCreatedAtMs });
  }
  const delta = redisDelta(redisBefore, redisAfter);
  const per = (n: number) => (fused === 0 ? Number.NaN : n / fused);
  return {
    profile,
    load,
    repetition,
    offeredRate: rate,
    requests: count,
    producedRate: sent.count / Math.max(1e-3, (sent.lastSendMs - sent.firstSendMs) / 1000),
    fused,
    missing: count - fused,
    duplicates,
    statuses,
    deadLetters: messagesBetween(deadLettersFrom, deadLettersTo),
    throughput: throughput(ids, ctx.collector.seen),
    latency: phaseLatency(ids, ctx.collector.seen, predictions),
    redis: {
      ...delta,
      perFused: {
        scriptCalls: per(delta.scriptCalls),
        roundTrips: per(delta.roundTrips),
        executedCommands: per(delta.executedCommands),
        scriptMs: per(delta.scriptMs),
      },
      keysLeft: await keysLeft(ctx.redis, ctx.redisNamespace),
      usedMemoryBytes: redisAfter.usedMemory,
    },
    processes: usage.processes,
    kafkaRequests: [...requestsAfter].map(([process, after]) => {
      const before: RequestCounts = requestsBefore.get(process) ?? { counts: {}, waitedMs: {}, savedAtMs: 0 };
      const sent = (api: string) => (after.counts[api] ?? 0) - (before.counts[api] ?? 0);
      const apis = Object.keys(after.counts).filter((api) => sent(api) > 0);
      const byApi = Object.fromEntries(apis.map((api) => [api, per(sent(api))]));
      const meanWaitMs = Object.fromEntries(apis.map((api) => [api, ((after.waitedMs[api] ?? 0) - (before.waitedMs[api] ?? 0)) / sent(api)]));
      return { process, perFused: Object.values(byApi).reduce((a, b) => a + b, 0), byApi, meanWaitMs };
    }),
    machine: usage.machine,
    timeline,
    ...(deadlineMs === undefined ? {} : { deadlineLateness: deadlineLateness(ids, ctx.collector.seen, deadlineMs, deadlineRecords) }),
  };
}

/** The pipeline with no traffic: CPU of every process over a quiet spell. */
export interface IdleResult {
  profile: string;
  seconds: number;
  processes: ProcessUsage[];
  machine: MachineUsage;
}

/**
 * Measures the processes' CPU while nothing is sent, once the consumers have seen their first
 * empty fetches (a quiet second first), so the figure is what an idle deployment costs.
 */
export async function measureIdle(ctx: PhaseContext, profile: string, seconds: number): Promise<IdleResult> {
  const usage = await sampleQuiet(ctx.processes, seconds);
  return { profile, seconds: usage.machine.wallSeconds, processes: usage.processes, machine: usage.machine };
}

/** The processes' CPU over `seconds`, after a quiet 2 s for what just happened to settle. */
async function sampleQuiet(processes: readonly WatchedProcess[], seconds: number) {
  await new Promise((r) => setTimeout(r, 2000));
  const sampler = new ProcessSampler(processes, 1000);
  sampler.start();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  return sampler.stop();
}

/** The broker's CPU before the run's services start: what it costs on its own, holding its partitions. */
export interface BrokerAlone {
  seconds: number;
  /** Share of one core. */
  cores: number;
}

/** Samples the broker's CPU over `seconds` while none of the run's processes talks to it. */
export async function measureBrokerAlone(brokerPid: number, seconds: number): Promise<BrokerAlone | undefined> {
  const usage = await sampleQuiet([{ name: 'kafka', pid: brokerPid }], seconds);
  const cores = usage.processes[0]?.cores;
  return cores === undefined ? undefined : { seconds: usage.machine.wallSeconds, cores };
}

/** What kafka-requests.ts writes: requests sent and their summed waits, by API, since start. */
interface RequestCounts {
  counts: Record<string, number>;
  waitedMs: Record<string, number>;
  savedAtMs: number;
}

/** Asks each counting process for its Kafka requests so far (SIGUSR2) and reads the answers. */
async function readRequestCounts(processes: readonly WatchedProcess[]): Promise<Map<string, RequestCounts>> {
  const askedAt = Date.now();
  const counting = processes.filter((p) => p.requestsFile !== undefined);
  for (const p of counting) process.kill(p.pid, 'SIGUSR2');
  const all = new Map<string, RequestCounts>();
  const deadline = askedAt + 5000;
  while (all.size < counting.length) {
    for (const p of counting) {
      if (all.has(p.name)) continue;
      try {
        const read = JSON.parse(readFileSync(p.requestsFile as string, 'utf8')) as RequestCounts;
        if (read.savedAtMs >= askedAt) all.set(p.name, read);
      } catch {
        // Being replaced right now: read it again.
      }
    }
    if (Date.now() > deadline)
      throw new Error(
        `no Kafka request counts from ${counting
          .filter((p) => !all.has(p.name))
          .map((p) => p.name)
          .join(', ')}`,
      );
    await new Promise((r) => setTimeout(r, 5));
  }
  return all;
}

/** Waits until `count` results are in; false if results stopped coming first. */
async function waitForResults(collector: FusedCollector, count: number): Promise<boolean> {
  let seen = collector.count;
  let progressAt = Date.now();
  return waitFor(() => {
    if (collector.count !== seen) {
      seen = collector.count;
      progressAt = Date.now();
    }
    return collector.count >= count || Date.now() - progressAt > STALL_MS;
  }, Number.POSITIVE_INFINITY).then(() => collector.count >= count);
}
