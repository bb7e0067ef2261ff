import { formatMetricsCost, type MetricsCost } from './metrics-cost.js';
import { formatTable } from '../services/core/table.js';
import type { BacklogResult } from './backlog.js';
import { formatBacklog } from './backlog-report.js';
import type { CeilingResult } from './ceiling.js';
import type { MessageBytes } from './message-sizes.js';
import type { BrokerAlone, IdleResult, PhaseResult } from './phase.js';
import type { ProcessUsage } from './process-stats.js';
import type { ProfileSummary } from './profile-summary.js';

/** Everything one bench run measured; written as JSON, and the source of the printed tables. */
export interface BenchReport {
  startedAt: string;
  options: Record<string, unknown>;
  environment: {
    node: string;
    cpus: number;
    loadAverage1mStart: number;
    loadAverage1mEnd: number;
    kafkaBrokers: string[];
    redisUrl: string;
    partitions: number;
  };
  messageBytes: MessageBytes;
  ceiling: CeilingResult[];
  /**
   * Fused results/s if every core did nothing but move the pipeline's messages through kafkajs and
   * the broker, at the CPU cost per message measured for the ceiling: per result with M models 1
   * feature event, M predictions and 1 fused result produced; M feature events, M predictions, 1
   * result consumed.
   */
  kafkajsBound: number | null;
  phases: PhaseResult[];
  /** Each profile's pipeline with no traffic. */
  idle: IdleResult[];
  /** The broker before the run's first client, when it runs on this machine and idle is measured. */
  brokerAlone?: BrokerAlone;
  redisMemory: { baselineBytes: number; afterPhasesBytes: number; afterTtlBytes: number; keysLeftAfterTtl: number };
  cpuProfiles: ProfileSummary[];
  /** The aggregator against a Kafka Streams app on a pre-loaded topic (--profile backlog). */
  backlog?: BacklogResult;
  /** What the Prometheus instruments cost per result (metrics-cost.ts). */
  metricsCost: MetricsCost;
}

export function kafkajsBound(ceiling: readonly CeilingResult[], cores: number, models = 3): number | null {
  // Messages moved per fused result.
  const PER_RESULT = { produced: { features: 1, predictions: models, fused: 1 }, consumed: { features: models, predictions: models, fused: 1 } } as const;
  let us = 0;
  for (const label of ['features', 'predictions', 'fused'] as const) {
    const c = ceiling.find((x) => x.label === label);
    if (c === undefined) return null;
    const broker = (v: number) => (Number.isFinite(v) ? v : 0);
    us += PER_RESULT.produced[label] * (c.cpuUs.produceClient + broker(c.cpuUs.produceBroker));
    us += PER_RESULT.consumed[label] * (c.cpuUs.consumeClient + broker(c.cpuUs.consumeBroker));
  }
  return (cores * 1e6) / us;
}

function median(values: number[]): number {
  const s = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** CPU microseconds a process spent per fused result of its phase. */
export function cpuUsPerFused(cpuSeconds: number, fused: number): number {
  return fused > 0 ? (cpuSeconds * 1e6) / fused : Number.NaN;
}

const fmt = (v: number, digits = 0) => (Number.isFinite(v) ? v.toFixed(digits) : '-');

/** The phases grouped by profile and load, in run order. */
function groups(phases: readonly PhaseResult[]): PhaseResult[][] {
  const by = new Map<string, PhaseResult[]>();
  for (const p of phases) {
    const key = `${p.profile} ${p.load}`;
    by.set(key, [...(by.get(key) ?? []), p]);
  }
  return [...by.values()];
}

export function formatReport(r: BenchReport): string {
  const out: string[] = [];
  const e = r.environment;
  const reps = Math.max(1, ...groups(r.phases).map((g) => g.length));
  out.push(
    `ensemble-stream bench  ${r.startedAt}  node ${e.node}, ${e.cpus} cores, load average ${e.loadAverage1mStart.toFixed(2)} -> ${e.loadAverage1mEnd.toFixed(2)}`,
  );
  out.push(
    `records: feature event ${r.messageBytes.featureEvent} B, prediction ${r.messageBytes.prediction} B, fused ${r.messageBytes.fused} B; ${e.partitions} partitions`,
  );
  if (reps > 1) out.push(`figures are medians of ${reps} runs of each phase`);
  if (r.phases.length === 0 && r.backlog !== undefined) return [...out, '', formatBacklog(r.backlog), '', ...formatMetricsCost(r.metricsCost)].join('\n');

  out.push('', 'Throughput and end-to-end latency (feature event created -> fused result consumed), ms');
  out.push(
    formatTable(
      ['profile', 'load', 'offered/s', 'produced/s', 'fused/s', 'sustained/s', 'p50', 'p95', 'p99', 'max', 'missing', 'dup', 'partial', 'dead'],
      groups(r.phases).map((g) => {
        const m = (f: (p: PhaseResult) => number, d = 0) => fmt(median(g.map(f)), d);
        const first = g[0] as PhaseResult;
        return [
          first.profile,
          first.load,
          first.offeredRate === 0 ? 'max' : String(first.offeredRate),
          m((p) => p.producedRate),
          m((p) => p.throughput.overall),
          m((p) => p.throughput.sustained),
          m((p) => p.latency.endToEnd.p50),
          m((p) => p.latency.endToEnd.p95),
          m((p) => p.latency.endToEnd.p99),
          m((p) => p.latency.endToEnd.max),
          String(g.reduce((a, p) => a + p.missing, 0)),
          String(g.reduce((a, p) => a + p.duplicates, 0)),
          String(g.reduce((a, p) => a + p.statuses.partial + p.statuses.insufficient, 0)),
          String(g.reduce((a, p) => a + p.deadLetters, 0)),
        ];
      }),
    ),
  );

  out.push('', 'Stages along the critical path (the prediction that completed the join), ms p50 / p99');
  out.push(
    formatTable(
      ['profile', 'load', 'pickup', 'worker', 'to aggregator', 'fusing', 'to client', 'traced'],
      groups(r.phases).map((g) => {
        const first = g[0] as PhaseResult;
        const s = (k: keyof PhaseResult['latency']['stages']) =>
          `${fmt(median(g.map((p) => p.latency.stages[k].p50)))} / ${fmt(median(g.map((p) => p.latency.stages[k].p99)))}`;
        return [
          first.profile,
          first.load,
          s('pickup'),
          s('worker'),
          s('toAggregator'),
          s('fusing'),
          s('toClient'),
          fmt(median(g.map((p) => p.latency.traced))),
        ];
      }),
    ),
  );

  const deadlines = groups(r.phases).filter((g) => g[0]?.deadlineLateness !== undefined);
  if (deadlines.length > 0) {
    out.push('', 'Deadlines with a dead model: how long after its deadline a request was visible to a read_committed client, ms');
    out.push('(sweep: deadline -> deadline record sent; to fused: record -> owner fused it; to client: transaction + client fetch)');
    out.push(
      formatTable(
        ['profile', 'offered/s', 'waited', 'late p50', 'p99', 'max', 'sweep p50/p99', 'to fused p50/p99', 'to client p50/p99'],
        deadlines.map((g) => {
          const first = g[0] as PhaseResult;
          const d = (f: (l: NonNullable<PhaseResult['deadlineLateness']>) => number) =>
            fmt(median(g.map((p) => f(p.deadlineLateness as NonNullable<PhaseResult['deadlineLateness']>))));
          return [
            first.profile,
            String(first.offeredRate),
            d((l) => l.count),
            d((l) => l.total.p50),
            d((l) => l.total.p99),
            d((l) => l.total.max),
            `${d((l) => l.sweep.p50)} / ${d((l) => l.sweep.p99)}`,
            `${d((l) => l.toFused.p50)} / ${d((l) => l.toFused.p99)}`,
            `${d((l) => l.toClient.p50)} / ${d((l) => l.toClient.p99)}`,
          ];
        }),
      ),
    );
  }

  out.push('', 'Redis per fused result (script calls, round trips, commands run incl. those inside scripts, script time)');
  out.push(
    formatTable(
      [
        'profile',
        'load',
        'script calls',
        'round trips',
        'commands',
        'script us',
        'prediction hashes left',
        'deadline entries left',
        'state hashes (until TTL)',
      ],
      groups(r.phases).map((g) => {
        const first = g[0] as PhaseResult;
        const last = g.at(-1) as PhaseResult;
        const m = (f: (p: PhaseResult) => number, d = 2) => fmt(median(g.map(f)), d);
        return [
          first.profile,
          first.load,
          m((p) => p.redis.perFused.scriptCalls),
          m((p) => p.redis.perFused.roundTrips),
          m((p) => p.redis.perFused.executedCommands),
          m((p) => p.redis.perFused.scriptMs * 1000, 1),
          String(last.redis.keysLeft.predictionHashes),
          String(last.redis.keysLeft.deadlineEntries),
          String(last.redis.keysLeft.states),
        ];
      }),
    ),
  );

  out.push(
    '',
    'Kafka requests per fused result, by the process sending them (the broker handles each one); the most frequent APIs, with their mean wait for an answer',
  );
  const requestRows: string[][] = [];
  for (const g of groups(r.phases)) {
    const first = g[0] as PhaseResult;
    for (const { process } of first.kafkaRequests) {
      const q = g.map((p) => p.kafkaRequests.find((x) => x.process === process)).filter((x) => x !== undefined);
      const apis = Object.keys(q[0]?.byApi ?? {}).map((api) => [api, median(q.map((x) => x.byApi[api] ?? 0))] as const);
      const wait = (api: string) => fmt(median(q.map((x) => x.meanWaitMs[api] ?? Number.NaN)), 1);
      const top = apis
        .filter(([, n]) => n > 0)
        .sort((a, b) => b[1] - a[1])
        .slice(0, 4)
        .map(([api, n]) => `${api} ${fmt(n, 3)} (${wait(api)} ms)`);
      requestRows.push([first.profile, first.load, process, fmt(median(q.map((x) => x.perFused)), 3), top.join(', ')]);
    }
    requestRows.push([first.profile, first.load, 'all', fmt(median(g.map((p) => p.kafkaRequests.reduce((a, x) => a + x.perFused, 0))), 3), '']);
  }
  out.push(formatTable(['profile', 'load', 'process', 'requests', 'top APIs'], requestRows));

  out.push(
    '',
    'CPU seconds, CPU microseconds per fused result, cores used (CPU s per wall s) and peak RSS per process; the machine: cores busy (all processes), of which busy with work not under test',
  );
  const rows: string[][] = [];
  for (const g of groups(r.phases)) {
    const first = g[0] as PhaseResult;
    for (const { name } of first.processes) {
      const q = g.map((p) => ({ fused: p.fused, x: p.processes.find((x) => x.name === name) })).filter((e) => e.x !== undefined);
      const x = (f: (u: ProcessUsage) => number) => q.map((e) => f(e.x as ProcessUsage));
      rows.push([
        first.profile,
        first.load,
        name,
        fmt(median(x((u) => u.cpuSeconds)), 1),
        fmt(median(q.map((e) => cpuUsPerFused((e.x as ProcessUsage).cpuSeconds, e.fused)))),
        fmt(median(x((u) => u.cores)), 2),
        fmt(median(x((u) => u.peakRssMb))),
      ]);
    }
    const total = (p: PhaseResult) => p.processes.reduce((a, u) => a + u.cpuSeconds, 0);
    rows.push([
      first.profile,
      first.load,
      'total',
      fmt(median(g.map(total)), 1),
      fmt(median(g.map((p) => cpuUsPerFused(total(p), p.fused)))),
      fmt(median(g.map((p) => p.processes.reduce((a, u) => a + u.cores, 0))), 2),
      '',
    ]);
    rows.push([
      first.profile,
      first.load,
      'machine: busy / others',
      '',
      '',
      fmt(median(g.map((p) => p.machine.busyCores)), 2),
      `others ${fmt(median(g.map((p) => p.machine.otherCores)), 2)}`,
    ]);
  }
  out.push(formatTable(['profile', 'load', 'process', 'CPU s', 'us/fused', 'cores', 'peak RSS MB'], rows));

  if (r.idle.length > 0) {
    out.push(
      '',
      "Idle: CPU of each process with no traffic, as a share of one core; pipeline: all but the bench's load generator and collector (target: under 5 %)",
    );
    const names = [...new Set(r.idle.flatMap((i) => i.processes.map((p) => p.name)))];
    out.push(
      formatTable(
        ['profile', 'seconds', ...names, 'total', 'pipeline'],
        r.idle.map((i) => [
          i.profile,
          fmt(i.seconds),
          ...names.map((n) => pct(i.processes.find((p) => p.name === n)?.cores ?? Number.NaN)),
          pct(idleCores(i)),
          pct(idlePipelineCores(i)),
        ]),
      ),
    );
    if (r.brokerAlone !== undefined) {
      out.push(
        `the broker alone, before the run's services and load started: ${pct(r.brokerAlone.cores)} of one core over ${fmt(r.brokerAlone.seconds)} s (its own timers and the partitions it holds, included in its share above)`,
      );
    }
  }

  if (r.ceiling.length > 0) {
    out.push('', 'Ceiling: the broker alone on this machine, messages/s (Kafka perf tools = JVM client; kafkajs = minimal loop)');
    out.push(
      formatTable(
        [
          'records',
          'value B',
          'java produce',
          'java consume',
          'kafkajs produce',
          'kafkajs consume',
          'CPU us/msg produce (client+broker)',
          'consume (client+broker)',
        ],
        r.ceiling.map((c) => [
          c.label,
          String(c.valueBytes),
          fmt(c.javaProduce),
          fmt(c.javaConsume),
          fmt(c.kafkajsProduce),
          fmt(c.kafkajsConsume),
          `${fmt(c.cpuUs.produceClient, 1)}+${fmt(c.cpuUs.produceBroker, 1)}`,
          `${fmt(c.cpuUs.consumeClient, 1)}+${fmt(c.cpuUs.consumeBroker, 1)}`,
        ]),
      ),
    );
    if (r.kafkajsBound !== null) {
      const best = Math.max(0, ...r.phases.map((p) => p.throughput.sustained).filter(Number.isFinite));
      out.push(
        `Kafka-bound pipeline (${e.cpus} cores doing only kafkajs + broker work for the pipeline's messages, nothing else): ${fmt(r.kafkajsBound)} fused/s; best sustained here ${fmt(best)} fused/s = ${fmt((best / r.kafkajsBound) * 100)}% of it`,
      );
    }
  }

  const mem = r.redisMemory;
  out.push(
    '',
    `Redis used_memory: baseline ${kb(mem.baselineBytes)}, after the phases ${kb(mem.afterPhasesBytes)}, after the state TTL ${kb(mem.afterTtlBytes)} (${signedKb(mem.afterTtlBytes - mem.baselineBytes)} vs baseline), per-request keys left ${mem.keysLeftAfterTtl} (each partition keeps its epoch and fused buckets)`,
  );

  for (const p of r.cpuProfiles) {
    out.push('', `CPU profile ${p.process}: ${fmt(p.busyMs)} ms busy`);
    out.push(
      formatTable(
        ['area', 'ms', 'share'],
        p.byArea.map((a) => [a.name, fmt(a.ms), `${fmt(a.share * 100, 1)}%`]),
      ),
    );
    out.push(
      formatTable(
        ['function (self time)', 'ms', 'share'],
        p.topFunctions.map((a) => [a.name, fmt(a.ms), `${fmt(a.share * 100, 1)}%`]),
      ),
    );
  }
  if (r.backlog !== undefined) out.push('', formatBacklog(r.backlog));
  out.push('', ...formatMetricsCost(r.metricsCost));
  return out.join('\n');
}

const pct = (cores: number) => `${fmt(cores * 100, 1)}%`;
const idleCores = (i: IdleResult) => i.processes.reduce((a, p) => a + p.cores, 0);
/** The bench's own processes, which load and read the pipeline. */
export const isBenchProcess = (name: string) => name === 'load-generator' || name.startsWith('collector');
const idlePipelineCores = (i: IdleResult) => i.processes.reduce((a, p) => a + (isBenchProcess(p.name) ? 0 : p.cores), 0);

/** One line: the idle pipeline's total and its largest parts. */
export function idleSummary(i: IdleResult): string {
  const top = [...i.processes]
    .sort((a, b) => b.cores - a.cores)
    .slice(0, 3)
    .map((p) => `${p.name} ${pct(p.cores)}`);
  return `pipeline ${pct(idlePipelineCores(i))} of one core, with the bench's own processes ${pct(idleCores(i))} (${top.join(', ')}); load average ${i.machine.loadAverage1mEnd.toFixed(2)}`;
}

const kb = (bytes: number) => `${(bytes / 1024).toFixed(0)} KiB`;
const signedKb = (bytes: number) => `${bytes >= 0 ? '+' : ''}${(bytes / 1024).toFixed(0)} KiB`;
