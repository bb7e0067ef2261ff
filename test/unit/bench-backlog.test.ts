import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type BacklogResult, backlogProblem, type Drained, identicalResults, type OutputRecord, summarise } from '../../bench/backlog.js';
import { formatBacklog } from '../../bench/backlog-report.js';
import { brokerKafkaVersion } from '../../bench/kafka-streams-app.js';
import { parseBenchOptions } from '../../bench/options.js';
import { codecs } from '../../services/shared/codec.js';
import type { FusedPrediction } from '../../services/shared/records.js';
import { repoRoot } from '../../services/shared/repo-root.js';

function fused(requestId: string, probabilities: number[], status: FusedPrediction['status'] = 'COMPLETE'): FusedPrediction {
  return {
    requestId,
    status,
    strategy: 'soft-voting',
    label: probabilities[0]! >= probabilities[1]! ? 'a' : 'b',
    probabilities,
    value: null,
    contributors: [{ modelId: 'm', modelVersion: '1', weight: 1 }],
    missing: [],
    requestCreatedAtMs: 1,
    fusedAtMs: 2,
    classes: ['a', 'b'],
  };
}

const record = (f: FusedPrediction, appendedAtMs: number, copies = 1): OutputRecord => ({ value: codecs.fusedPrediction.encode(f), appendedAtMs, copies });

const drained: Drained = {
  joiner: 'aggregator',
  startedAtMs: 1000,
  cpu: [
    { name: 'aggregator', cpuSeconds: 1.5 },
    { name: 'redis', cpuSeconds: 0.25 },
    { name: 'kafka', cpuSeconds: Number.NaN },
  ],
  startupCpu: [],
  machine: { busyCores: 1.5, otherCores: 0.25 },
};

describe('bench options: the backlog profile', () => {
  it('is part of every profile by default, with 100,000 requests', () => {
    const o = parseBenchOptions([]);
    expect(o?.backlog).toBe(100_000);
    expect(o?.profiles).toEqual(['synthetic', 'letter', 'dead-model', 'colocated', 'letter-colocated']);
  });

  it('runs alone, or with others, and takes its own request count', () => {
    expect(parseBenchOptions(['--profile', 'backlog'])).toMatchObject({ profiles: [], backlog: 100_000 });
    expect(parseBenchOptions(['--profile', 'synthetic,backlog', '--backlog-requests', '5000'])).toMatchObject({ profiles: ['synthetic'], backlog: 5000 });
    expect(parseBenchOptions(['--profile', 'synthetic'])?.backlog).toBeUndefined();
  });
});

describe('backlog results', () => {
  const expected = new Set(['r1', 'r2', 'r3']);

  it('counts results, missing, duplicates and unexpected ids, and the rate from first to last append', () => {
    const output = new Map([
      ['r1', record(fused('r1', [0.5, 0.5]), 3000)],
      ['r2', record(fused('r2', [0.25, 0.75], 'PARTIAL'), 5000, 3)],
      ['other', record(fused('other', [1, 0]), 4000)],
    ]);
    const run = summarise(drained, output, expected);
    expect(run).toMatchObject({ results: 2, missing: 1, duplicates: 2, unexpected: 1, complete: 1, startupSeconds: 2, drainSeconds: 2, rate: 0.5 });
    // The broker's CPU could not be read: the total is what could.
    expect(run.cpuUsPerResult).toBe(875_000);
  });

  it('calls two results identical only when status, label and every probability match bit for bit', () => {
    const p = 0.1 + 0.2;
    const a = new Map([
      ['r1', record(fused('r1', [p, 1 - p]), 0)],
      ['r2', record(fused('r2', [0.5, 0.5]), 0)],
      ['r3', record(fused('r3', [0.5, 0.5]), 0)],
    ]);
    const b = new Map([
      ['r1', record(fused('r1', [p, 1 - p]), 0)],
      // One ulp away.
      ['r2', record(fused('r2', [0.5, 0.5000000000000001]), 0)],
      ['r3', record(fused('r3', [0.5, 0.5], 'PARTIAL'), 0)],
    ]);
    expect(identicalResults(a, b)).toBe(1);
  });

  it('reports a lost, repeated or differing result as a problem, and the ratio against the target', () => {
    const run = summarise(drained, new Map([...expected].map((id, i) => [id, record(fused(id, [0.5, 0.5]), 1000 * i)])), expected);
    const result: BacklogResult = {
      requests: 3,
      predictions: 9,
      models: 3,
      classes: 2,
      partitions: 3,
      preload: { seconds: 1, predictionsPerSecond: 9 },
      deadlineMs: 600_000,
      stateTtlMs: 660_000,
      kafkaStreams: { version: '4.3.1', processingGuarantee: 'exactly_once_v2', commitIntervalMs: 100, streamThreads: 1, store: 'persistent' },
      runs: [run, { ...run, joiner: 'kafka-streams', rate: 2 * run.rate }],
      identical: 3,
      rateRatio: 0.5,
      cpuRatio: 1,
      loadAverage1m: { start: 1, end: 1 },
    };
    expect(backlogProblem(result)).toBeUndefined();
    expect(formatBacklog(result)).toContain('0.50x the rate (target >= 1.5x: not met)');
    expect(backlogProblem({ ...result, identical: 2 })).toContain('only 2 of 3 results are the same bit for bit');
    expect(backlogProblem({ ...result, runs: [{ ...run, missing: 1, duplicates: 2 }] })).toContain('aggregator: 1 missing, 2 duplicates');
  });
});

describe('the Kafka Streams app', () => {
  it('is built by default with the broker’s Kafka version (infra/versions.env)', () => {
    const pom = readFileSync(join(repoRoot(), 'bench', 'kafka-streams', 'pom.xml'), 'utf8');
    expect(/<kafka\.version>([^<]+)<\/kafka\.version>/.exec(pom)?.[1]).toBe(brokerKafkaVersion());
  });
});
