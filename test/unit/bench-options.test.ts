import { describe, expect, it } from 'vitest';
import { parseBenchOptions } from '../../bench/options.js';
import { kafkajsBound } from '../../bench/report.js';
import { formatScaling, type ScalingReport, type ScalingRow, scalingFailures } from '../../bench/scaling-table.js';
import { ConfigError } from '../../services/shared/errors.js';

describe('bench options', () => {
  it('defaults to three models and the partitions of ES_PARTITIONS, no scaling matrix', () => {
    const o = parseBenchOptions([]);
    expect(o?.models).toBe(3);
    expect(o?.partitions).toBeUndefined();
    expect(o?.scaling).toBeUndefined();
    expect(o?.requests).toBe(20_000);
  });

  it('runs every profile in both delivery modes unless told one, and refuses an unknown mode', () => {
    expect(parseBenchOptions([])?.deliveries).toEqual(['exactly-once', 'at-least-once']);
    expect(parseBenchOptions(['--delivery', 'exactly-once'])?.deliveries).toEqual(['exactly-once']);
    expect(() => parseBenchOptions(['--delivery', 'at-most-once'])).toThrow(/is not one of/);
  });

  it('takes a number of models and of partitions', () => {
    const o = parseBenchOptions(['--models', '5', '--partitions', '12']);
    expect(o?.models).toBe(5);
    expect(o?.partitions).toBe(12);
  });

  it('refuses lists, fewer than 2 models and --open-requests outside the scaling mode', () => {
    expect(() => parseBenchOptions(['--models', '3,5'])).toThrow(ConfigError);
    expect(() => parseBenchOptions(['--models', '1'])).toThrow(/at least 2/);
    expect(() => parseBenchOptions(['--open-requests', '1000'])).toThrow(/only with --scaling/);
  });

  it('runs the whole matrix with short phases and no ceiling in the scaling mode', () => {
    const o = parseBenchOptions(['--scaling']);
    expect(o?.scaling).toEqual({ models: [3, 5, 10], aggregators: [1, 2], partitions: [3, 12], openRequests: [1000, 10_000, 50_000] });
    expect(o).toMatchObject({ requests: 5000, warmup: 1000, ceiling: false });
    // The profiles, the backlog comparison among them, are not run in this mode.
    expect(o?.backlog).toBeUndefined();
  });

  it('narrows each dimension of the matrix, and skips the memory table with --open-requests 0', () => {
    const o = parseBenchOptions(['--scaling', '--models', '10,3', '--aggregators', '2', '--partitions', '12', '--open-requests', '0', '--requests', '800']);
    expect(o?.scaling).toEqual({ models: [10, 3], aggregators: [2], partitions: [12], openRequests: [] });
    expect(o?.requests).toBe(800);
    expect(parseBenchOptions(['--scaling', '--open-requests', '5000,100'])?.scaling?.openRequests).toEqual([100, 5000]);
    expect(() => parseBenchOptions(['--scaling', '--partitions', '3,x'])).toThrow(ConfigError);
  });
});

describe('scaling table', () => {
  const row: ScalingRow = {
    models: 10,
    aggregators: 2,
    partitions: 12,
    requests: 5000,
    fusedPerSecond: 812.4,
    sustainedPerSecond: 1000,
    missing: 0,
    duplicates: 0,
    predictionHashesLeft: 0,
    cpuUs: { total: 2400, workers: 1200, aggregators: 500, broker: 400, redis: 40, client: 260 },
    machine: { busyCores: 1.9, otherCores: 0.2, loadAverage1m: 3.1 },
  };
  const report: ScalingReport = {
    startedAt: '2025-01-01T00:00:00.000Z',
    options: {},
    environment: { node: 'v20', cpus: 2, loadAverage1mStart: 1, loadAverage1mEnd: 2, kafkaBrokers: [], redisUrl: '' },
    messageBytes: { prediction: 300 },
    rows: [row, { ...row, models: 3, missing: 2, error: 'workers did not start' }],
    openRequests: [
      { open: 1000, predictionsPerRequest: 2, usedMemoryBytes: 3_000_000, growthBytes: 1_024_000, bytesPerRequest: 1024, deadlineEntries: 1000, fused: 0 },
    ],
    openRequestsBaselineBytes: 1_976_000,
  };

  it('prints one row per configuration and the memory per open request', () => {
    const text = formatScaling(report);
    expect(text).toMatch(/10 +2 +12 +812 +2400 +1200 +500 +400 +40 +260 +0\/0/);
    expect(text).toContain('failed: workers did not start');
    expect(text).toMatch(/1000 +2930 KiB +1000 KiB +1024 +1000 +0/);
  });

  it('fails the run for a configuration not measured, lost results or requests not held open', () => {
    expect(scalingFailures(report)).toEqual(['3 models, 2 aggregator(s), 12 partitions: workers did not start']);
    const notHeld = {
      ...report,
      rows: [row],
      openRequests: [{ ...(report.openRequests[0] as ScalingReport['openRequests'][number]), deadlineEntries: 998, fused: 2 }],
    };
    expect(scalingFailures(notHeld)).toEqual(['1000 open requests: 998 held in the join, 2 fused']);
  });
});

describe('the Kafka-bound estimate', () => {
  it('counts the records of every model', () => {
    const cpuUs = { produceClient: 1, produceBroker: 1, consumeClient: 1, consumeBroker: 1 };
    const ceiling = ['features', 'predictions', 'fused'].map((label) => ({ label, cpuUs })) as unknown as Parameters<typeof kafkajsBound>[0];
    // 3 models: 5 records produced and 7 consumed per result, 2 us each: 24 us.
    expect(kafkajsBound(ceiling, 2)).toBeCloseTo(2e6 / 24);
    // 10 models: 12 produced and 21 consumed: 66 us.
    expect(kafkajsBound(ceiling, 2, 10)).toBeCloseTo(2e6 / 66);
  });
});
