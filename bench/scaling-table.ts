import { formatTable } from '../services/core/table.js';
import { ConfigError } from '../services/shared/errors.js';
import { positiveInt } from '../services/shared/runtime-config.js';

// The scaling mode's options and tables (bench/scaling.ts runs it): no I/O here.

/** The matrix `--scaling` runs, one saturation phase per configuration, and the open-request counts. */
export interface ScalingOptions {
  models: number[];
  aggregators: number[];
  partitions: number[];
  /** Requests held open in the join for the Redis memory table, cumulative; empty: not measured. */
  openRequests: number[];
}

export const SCALING_DEFAULTS: ScalingOptions = {
  models: [3, 5, 10],
  aggregators: [1, 2],
  partitions: [3, 12],
  openRequests: [1000, 10_000, 50_000],
};

/** Comma-separated positive integers, in the order given, without repeats. */
function intList(text: string | undefined, fallback: number[], flag: string): number[] {
  if (text === undefined) return fallback;
  const list = [...new Set(text.split(',').map((t) => positiveInt(t.trim(), flag)))];
  if (list.length === 0) throw new ConfigError(`${flag}: give at least one value`);
  return list;
}

/** `--models`, `--aggregators`, `--partitions` and `--open-requests` as lists (scaling mode). */
export function parseScalingOptions(values: Record<string, string | boolean | undefined>): ScalingOptions {
  const text = (name: string) => {
    const v = values[name];
    return typeof v === 'string' ? v : undefined;
  };
  const options: ScalingOptions = {
    models: intList(text('models'), SCALING_DEFAULTS.models, '--models'),
    aggregators: intList(text('aggregators'), SCALING_DEFAULTS.aggregators, '--aggregators'),
    partitions: intList(text('partitions'), SCALING_DEFAULTS.partitions, '--partitions'),
    openRequests: text('open-requests') === '0' ? [] : intList(text('open-requests'), SCALING_DEFAULTS.openRequests, '--open-requests').sort((a, b) => a - b),
  };
  if (options.models.some((m) => m < 2)) throw new ConfigError('--models: at least 2');
  return options;
}

/** One configuration of the matrix, measured at saturation. */
export interface ScalingRow {
  models: number;
  aggregators: number;
  partitions: number;
  requests: number;
  /**
   * Results per second from the first request created to the last result received. (A phase this
   * short has no steady middle: results arrive in bursts, so the middle-80 % rate overstates it.)
   */
  fusedPerSecond: number;
  /** Results over the middle 80 % of arrivals, for the record. */
  sustainedPerSecond: number;
  /** Warm-up and measured phase together. */
  missing: number;
  duplicates: number;
  /** Prediction hashes left in Redis after the phase (must be 0). */
  predictionHashesLeft: number;
  /** CPU microseconds per fused result: every process measured, and its parts. */
  cpuUs: { total: number; workers: number; aggregators: number; broker: number; redis: number; client: number };
  /** Cores busy on the machine during the phase, of which with work not under test; 1-minute load average at its end. */
  machine: { busyCores: number; otherCores: number; loadAverage1m: number };
  /** Why the configuration could not be measured. */
  error?: string;
}

/** Redis memory with `open` requests waiting in the join for a model that never answers. */
export interface OpenRequestsRow {
  open: number;
  /** Predictions joined per open request (the models that answered). */
  predictionsPerRequest: number;
  usedMemoryBytes: number;
  /** used_memory over the reading taken before any request was sent. */
  growthBytes: number;
  bytesPerRequest: number;
  /** Deadline index entries in Redis: how many requests the join holds open. */
  deadlineEntries: number;
  /** Fused results produced meanwhile (must be 0: every request waits). */
  fused: number;
}

export interface ScalingReport {
  startedAt: string;
  options: Record<string, unknown>;
  environment: { node: string; cpus: number; loadAverage1mStart: number; loadAverage1mEnd: number; kafkaBrokers: string[]; redisUrl: string };
  messageBytes: { prediction: number };
  rows: ScalingRow[];
  openRequests: OpenRequestsRow[];
  /** used_memory when the open-request measurement began (its pipeline started, nothing sent). */
  openRequestsBaselineBytes?: number;
}

const fmt = (v: number, digits = 0) => (Number.isFinite(v) ? v.toFixed(digits) : '-');

export function formatScaling(r: ScalingReport): string {
  const e = r.environment;
  const out = [
    `ensemble-stream bench --scaling  ${r.startedAt}  node ${e.node}, ${e.cpus} cores, load average ${e.loadAverage1mStart.toFixed(2)} -> ${e.loadAverage1mEnd.toFixed(2)}`,
  ];
  if (r.rows.length > 0) {
    out.push(
      '',
      'Scaling at saturation: fused results/s (first request created to last result received) and CPU microseconds per fused result, in total',
      '(every process: workers, aggregators, broker, Redis, and the client: load generator and collector) and by part; missing / duplicated',
      'results of the warm-up and the phase (must be 0); cores busy on the machine / of them with work not under test; load average at the end',
    );
    out.push(
      formatTable(
        [
          'models',
          'aggregators',
          'partitions',
          'fused/s',
          'total us',
          'workers us',
          'aggregators us',
          'broker us',
          'redis us',
          'client us',
          'missing/dup',
          'busy/others',
          'load',
        ],
        r.rows.map((row) => [
          String(row.models),
          String(row.aggregators),
          String(row.partitions),
          row.error === undefined ? fmt(row.fusedPerSecond) : `failed: ${row.error}`,
          fmt(row.cpuUs.total),
          fmt(row.cpuUs.workers),
          fmt(row.cpuUs.aggregators),
          fmt(row.cpuUs.broker),
          fmt(row.cpuUs.redis),
          fmt(row.cpuUs.client),
          `${row.missing}/${row.duplicates}`,
          `${fmt(row.machine.busyCores, 2)}/${fmt(row.machine.otherCores, 2)}`,
          fmt(row.machine.loadAverage1m, 1),
        ]),
      ),
    );
  }
  if (r.openRequests.length > 0) {
    const perRequest = r.openRequests[0]?.predictionsPerRequest ?? 0;
    out.push(
      '',
      `Redis used_memory with requests open in the join (each holding ${perRequest} predictions of ${r.messageBytes.prediction} B, waiting for a model that never answers),`,
      `over ${kib(r.openRequestsBaselineBytes ?? Number.NaN)} before the first request`,
    );
    out.push(
      formatTable(
        ['open requests', 'used_memory', 'growth', 'bytes per open request', 'deadline entries', 'fused'],
        r.openRequests.map((o) => [
          String(o.open),
          kib(o.usedMemoryBytes),
          kib(o.growthBytes),
          fmt(o.bytesPerRequest),
          String(o.deadlineEntries),
          String(o.fused),
        ]),
      ),
    );
  }
  return out.join('\n');
}

/** Why the run must fail: a configuration not measured, results lost or repeated, state left or requests not held. */
export function scalingFailures(r: ScalingReport): string[] {
  const name = (row: ScalingRow) => `${row.models} models, ${row.aggregators} aggregator(s), ${row.partitions} partitions`;
  const failures = r.rows.flatMap((row) => {
    if (row.error !== undefined) return [`${name(row)}: ${row.error}`];
    if (row.missing > 0 || row.duplicates > 0) return [`${name(row)}: ${row.missing} missing, ${row.duplicates} duplicated`];
    if (row.predictionHashesLeft > 0) return [`${name(row)}: ${row.predictionHashesLeft} prediction hashes left in Redis`];
    return [];
  });
  for (const o of r.openRequests) {
    if (o.fused > 0 || o.deadlineEntries !== o.open) failures.push(`${o.open} open requests: ${o.deadlineEntries} held in the join, ${o.fused} fused`);
  }
  return failures;
}

const kib = (bytes: number) => (Number.isFinite(bytes) ? `${(bytes / 1024).toFixed(0)} KiB` : '-');
