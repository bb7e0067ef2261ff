import { formatTable } from '../services/core/table.js';
import type { BacklogResult, JoinerRun } from './backlog.js';

/** The aggregator's rate over Kafka Streams' on the same backlog that issue #16 asks for. */
export const BACKLOG_TARGET_RATIO = 1.5;

const fmt = (v: number, digits = 0) => (Number.isFinite(v) ? v.toFixed(digits) : '-');
const cpuOf = (run: JoinerRun, name: string) => run.cpu.find((p) => p.name === name)?.cpuSeconds ?? Number.NaN;
const total = (run: JoinerRun) => run.cpu.reduce((a, p) => a + (Number.isFinite(p.cpuSeconds) ? p.cpuSeconds : 0), 0);

/** The backlog comparison as printed by the bench: one row per joiner, then the ratios. */
export function formatBacklog(r: BacklogResult): string {
  const out: string[] = [];
  out.push(
    `Backlog: ${r.requests} requests pre-loaded (${r.predictions} predictions of ${r.models} synthetic models, ${r.classes} classes, ${r.partitions} partitions; ${fmt(r.preload.predictionsPerSecond)} predictions/s), drained by each joiner exactly once into its own topic; load average ${fmt(r.loadAverage1m.start, 2)} -> ${fmt(r.loadAverage1m.end, 2)}`,
  );
  out.push(
    "(drain: first result to last by the broker's append times; CPU s from the first result seen to the last input offset committed; others cores: the machine's cores busy meanwhile with work not under test)",
  );
  out.push(
    formatTable(
      [
        'joiner',
        'start-up s',
        'results',
        'missing',
        'dup',
        'complete',
        'drain s',
        'fused/s',
        'CPU s joiner',
        'redis',
        'kafka',
        'total',
        'us/result',
        'others cores',
      ],
      r.runs.map((run) => [
        run.joiner,
        fmt(run.startupSeconds, 1),
        String(run.results),
        String(run.missing),
        String(run.duplicates + run.unexpected),
        String(run.complete),
        fmt(run.drainSeconds, 2),
        fmt(run.rate),
        fmt(cpuOf(run, run.joiner), 1),
        fmt(cpuOf(run, 'redis'), 1),
        fmt(cpuOf(run, 'kafka'), 1),
        fmt(total(run), 1),
        fmt(run.cpuUsPerResult),
        fmt(run.machine.otherCores, 2),
      ]),
    ),
  );
  const verdict = r.rateRatio >= BACKLOG_TARGET_RATIO ? 'met' : 'not met';
  out.push(
    `aggregator / Kafka Streams: ${fmt(r.rateRatio, 2)}x the rate (target >= ${BACKLOG_TARGET_RATIO}x: ${verdict}), ${fmt(r.cpuRatio, 2)}x the CPU per result; ${r.identical} of ${r.requests} results bit-identical (status, label, probabilities)`,
  );
  const ks = r.kafkaStreams;
  out.push(
    `Kafka Streams ${ks.version}: ${ks.processingGuarantee}, commit.interval.ms ${ks.commitIntervalMs} (its default under exactly-once), ${ks.streamThreads} stream thread, ${ks.store}; aggregator deadline ${r.deadlineMs} ms, state TTL ${r.stateTtlMs} ms`,
  );
  return out.join('\n');
}
