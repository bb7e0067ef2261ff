import { readFileSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { Histogram, type Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { AggregatorMetrics } from '../../services/aggregator/aggregator-metrics.js';
import type { BreakerState } from '../../services/aggregator/join-breaker.js';
import { parseTarget, readDashboardSettings } from '../../services/dashboard/main.js';
import { parsePromText, sumBy } from '../../services/dashboard/prom-text.js';
import { appendHistory, buildView } from '../../services/dashboard/view.js';
import { MetricsEndpoint } from '../../services/evaluator/prometheus.js';
import { LogSampler } from '../../services/shared/log-sampler.js';
import { readMetricsEndpoint } from '../../services/shared/metrics-server.js';
import type { EnsembleMetrics, MetricsEntry } from '../../services/shared/records.js';
import { repoRoot } from '../../services/shared/repo-root.js';
import { WorkerMetrics } from '../../services/worker/worker-metrics.js';

const workerCounts = () => ({ predictions: 7, errors: 2, abstains: 1, deadLettersByReason: { OVERSIZED: 3 } as Record<string, number>, invalidOutputs: 1 });

function joinBreakers(states: Record<string, BreakerState>) {
  const transitions: Record<string, Record<BreakerState, number>> = {};
  for (const m of Object.keys(states)) transitions[m] = { open: states[m] === 'open' ? 1 : 0, 'half-open': 0, closed: 0 };
  return { transitions, state: (m: string) => states[m] ?? 'closed' };
}

const aggregatorCounts = () => ({
  complete: 5,
  partial: 2,
  insufficient: 1,
  duplicates: 4,
  late: { m2: 3 } as Record<string, number>,
  batches: 9,
  retriedBatches: 0,
  restores: 0,
});

function entry(subject: string, over: Partial<MetricsEntry> = {}): MetricsEntry {
  return {
    subject,
    labelled: 10,
    accuracy: 0.9,
    macroPrecision: 0.9,
    macroRecall: 0.9,
    macroF1: 0.85,
    logLoss: 0.3,
    brier: 0.1,
    mae: null,
    rmse: null,
    latencyP50Ms: 12,
    latencyP95Ms: 20,
    latencyP99Ms: 30,
    late: 0,
    partial: 0,
    weight: null,
    ...over,
  };
}

async function exposition(registry: Registry) {
  return parsePromText(await registry.metrics());
}

describe('Prometheus text parsing', () => {
  it('reads samples, labels with escapes, special values, and skips comments', () => {
    const samples = parsePromText(
      ['# HELP x y', '# TYPE a counter', 'a_total{status="OK",model="m\\"1"} 3', 'b 2.5', 'c{le="+Inf"} +Inf', 'd NaN', 'garbage line {'].join('\n'),
    );
    expect(samples).toEqual([
      { name: 'a_total', labels: { status: 'OK', model: 'm"1' }, value: 3 },
      { name: 'b', labels: {}, value: 2.5 },
      { name: 'c', labels: { le: '+Inf' }, value: Infinity },
      { name: 'd', labels: {}, value: Number.NaN },
    ]);
    expect(sumBy(samples, 'a_total', 'status')).toEqual(new Map([['OK', 3]]));
  });
});

describe('worker metrics', () => {
  it('exposes the counts the worker keeps (one source) and follows its breaker', async () => {
    const counts = workerCounts();
    const metrics = new WorkerMetrics([{ model: 'm1', counts: counts }]);
    const breaker = new EventEmitter();
    metrics.watchBreaker('m1', breaker);
    breaker.emit('open');
    metrics.batch(2, 40, '17');
    metrics.call('m1', 0.2);
    counts.predictions++;
    const s = await exposition(metrics.registry);
    expect(sumBy(s, 'ensemble_stream_worker_predictions_total', 'status')).toEqual(
      new Map([
        ['OK', 8],
        ['ERROR', 2],
        ['ABSTAIN', 1],
      ]),
    );
    expect(sumBy(s, 'ensemble_stream_worker_dead_letters_total', 'reason')).toEqual(new Map([['OVERSIZED', 3]]));
    expect(sumBy(s, 'ensemble_stream_worker_breaker_state', 'state')).toEqual(
      new Map([
        ['closed', 0],
        ['half-open', 0],
        ['open', 1],
      ]),
    );
    expect(sumBy(s, 'ensemble_stream_worker_breaker_transitions_total', 'state')).toEqual(new Map([['open', 1]]));
    expect(sumBy(s, 'ensemble_stream_worker_consumer_lag_messages', 'partition')).toEqual(new Map([['2', 17]]));
    expect(sumBy(s, 'ensemble_stream_worker_model_call_duration_seconds_count').get('')).toBe(1);
    expect(sumBy(s, 'ensemble_stream_worker_batch_size_messages_sum').get('')).toBe(40);
  });
});

describe('aggregator metrics', () => {
  it('exposes the aggregator counts and breakers, and counts missing models and dead letters per committed batch', async () => {
    const ensemble = {
      strategy: 'soft-voting',
      models: [
        { id: 'm1', weight: 2 },
        { id: 'm2', weight: 1 },
      ],
    };
    const metrics = new AggregatorMetrics(ensemble, aggregatorCounts(), joinBreakers({ m1: 'closed', m2: 'open' }), async (p) => p * 10);
    metrics.fetched(1, '5');
    metrics.step('join', 3);
    const fused = {
      requestId: 'r',
      status: 'PARTIAL' as const,
      strategy: 's',
      label: 'a',
      probabilities: [1],
      value: null,
      contributors: [],
      missing: [{ modelId: 'm2', reason: 'CIRCUIT_OPEN' as const, detail: null }],
      requestCreatedAtMs: 1000,
      fusedAtMs: 1250,
    };
    metrics.committed([fused, fused], ['EXPIRED']);
    const s = await exposition(metrics.registry);
    expect(sumBy(s, 'ensemble_stream_aggregator_fused_total', 'status')).toEqual(
      new Map([
        ['COMPLETE', 5],
        ['PARTIAL', 2],
        ['INSUFFICIENT', 1],
      ]),
    );
    expect(sumBy(s, 'ensemble_stream_aggregator_missing_models_total', 'reason')).toEqual(new Map([['CIRCUIT_OPEN', 2]]));
    expect(sumBy(s, 'ensemble_stream_aggregator_dead_letters_total', 'reason')).toEqual(new Map([['EXPIRED', 1]]));
    expect(sumBy(s, 'ensemble_stream_aggregator_late_predictions_total', 'model')).toEqual(
      new Map([
        ['m1', 0],
        ['m2', 3],
      ]),
    );
    expect(s.filter((x) => x.name === 'ensemble_stream_aggregator_breaker_state' && x.value === 1).map((x) => x.labels)).toEqual([
      { model: 'm1', state: 'closed' },
      { model: 'm2', state: 'open' },
    ]);
    expect(sumBy(s, 'ensemble_stream_aggregator_open_joins', 'partition')).toEqual(new Map([['1', 10]]));
    expect(sumBy(s, 'ensemble_stream_aggregator_request_duration_seconds_sum').get('')).toBeCloseTo(0.5);
    expect(sumBy(s, 'ensemble_stream_aggregator_configured_weight', 'model')).toEqual(
      new Map([
        ['m1', 2],
        ['m2', 1],
      ]),
    );
  });
});

describe('dashboard view', () => {
  it('adds up instances, shows the worst breaker state and the latest metrics record', async () => {
    const w1 = new WorkerMetrics([{ model: 'm1', counts: workerCounts() }]);
    const w2 = new WorkerMetrics([{ model: 'm2', counts: { ...workerCounts(), deadLettersByReason: { OVERSIZED: 1, INVALID_VALUE: 2 } } }]);
    const ensemble = {
      strategy: 'learned-weights',
      models: [
        { id: 'm1', weight: 1 },
        { id: 'm2', weight: 1 },
      ],
    };
    const a1 = new AggregatorMetrics(ensemble, aggregatorCounts(), joinBreakers({ m2: 'half-open' }), undefined);
    const a2 = new AggregatorMetrics(ensemble, aggregatorCounts(), joinBreakers({ m2: 'open' }), undefined);
    const scrapes = await Promise.all([w1, w2, a1, a2].map(async (m, i) => ({ name: `s${i}`, url: `http://x/${i}`, samples: await exposition(m.registry) })));
    const record: EnsembleMetrics = {
      generatedAtMs: 5000,
      window: 'count:100',
      source: 'e',
      entries: [entry('m1', { weight: 0.7 }), entry('m2', { weight: 0.3 }), entry('ensemble')],
    };
    const view = buildView([...scrapes, { name: 'down', url: 'http://y', samples: [], error: 'refused' }], record, appendHistory([], record, 10), 6000);
    expect(view.fused).toEqual({ COMPLETE: 10, PARTIAL: 4, INSUFFICIENT: 2 });
    expect(view.deadLettersByReason).toEqual({ OVERSIZED: 4, INVALID_VALUE: 2 });
    expect(view.strategy).toBe('learned-weights');
    expect(view.weights).toEqual([
      { model: 'm1', configured: 2, learned: 0.7 },
      { model: 'm2', configured: 2, learned: 0.3 },
    ]);
    expect(view.breakers).toEqual([
      { model: 'm1', worker: 'closed', join: 'closed' },
      { model: 'm2', worker: 'closed', join: 'open' },
    ]);
    expect(view.predictions).toEqual([
      { model: 'm1', OK: 7, ERROR: 2, ABSTAIN: 1 },
      { model: 'm2', OK: 7, ERROR: 2, ABSTAIN: 1 },
    ]);
    expect(view.targets.at(-1)).toEqual({ name: 'down', url: 'http://y', up: false, error: 'refused' });
    expect(view.quality?.entries.map((e) => e.subject)).toEqual(['m1', 'm2', 'ensemble']);
  });

  it('keeps the history of the last records only', () => {
    let history = appendHistory([], { generatedAtMs: 1, window: 'w', source: 's', entries: [entry('ensemble')] }, 2);
    history = appendHistory(history, { generatedAtMs: 2, window: 'w', source: 's', entries: [entry('ensemble')] }, 2);
    history = appendHistory(history, { generatedAtMs: 3, window: 'w', source: 's', entries: [entry('ensemble', { accuracy: 0.5 })] }, 2);
    expect(history.map((p) => [p.t, p.accuracy])).toEqual([
      [2, 0.9],
      [3, 0.5],
    ]);
  });

  it('reads its settings and refuses bad targets and ports', () => {
    expect(readDashboardSettings({ ES_DASHBOARD_TARGETS: 'agg=http://h:1/metrics' }, ['w=http://h:2/metrics']).targets).toEqual([
      { name: 'agg', url: 'http://h:1/metrics' },
      { name: 'w', url: 'http://h:2/metrics' },
    ]);
    expect(readDashboardSettings({}).port).toBe(9460);
    expect(() => parseTarget('no-url')).toThrow(/NAME=http/);
    expect(() => readDashboardSettings({ ES_DASHBOARD_PORT: '70000' })).toThrow(/ES_DASHBOARD_PORT/);
    expect(readMetricsEndpoint({ ES_METRICS_PORT: 'off' }, 9465)).toBeUndefined();
    expect(readMetricsEndpoint({}, 9465)).toEqual({ port: 9465, host: '0.0.0.0' });
    expect(() => readMetricsEndpoint({ ES_METRICS_PORT: 'x' }, 9465)).toThrow(/ES_METRICS_PORT/);
  });
});

describe('Grafana dashboard', () => {
  /** Every metric the services register, with its label names (histograms: their series names). */
  async function registered(): Promise<Map<string, Set<string>>> {
    const out = new Map<string, Set<string>>();
    const ensemble = { strategy: 's', models: [{ id: 'm', weight: 1 }] };
    const registries = [
      new WorkerMetrics([{ model: 'm', counts: workerCounts() }]).registry,
      new AggregatorMetrics(ensemble, aggregatorCounts(), joinBreakers({ m: 'closed' }), undefined).registry,
      new MetricsEndpoint().registry,
    ];
    for (const r of registries) {
      for (const m of r.getMetricsAsArray() as unknown as { name: string; labelNames: string[] }[]) {
        const labels = new Set(m.labelNames);
        const names = m instanceof Histogram ? ['_bucket', '_sum', '_count'].map((x) => m.name + x) : [m.name];
        for (const n of names) out.set(n, new Set([...labels, ...(n.endsWith('_bucket') ? ['le'] : [])]));
      }
    }
    return out;
  }

  it('queries only metrics and labels the services expose', async () => {
    const dashboard = JSON.parse(readFileSync(join(repoRoot(), 'infra/grafana/dashboards/ensemble-stream.json'), 'utf8')) as {
      panels: { title: string; targets: { expr: string }[] }[];
    };
    const known = await registered();
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => ({ panel: p.title, expr: t.expr })));
    expect(exprs.length).toBeGreaterThan(15);
    const used = new Set<string>();
    for (const { panel, expr } of exprs) {
      const names = [...expr.matchAll(/ensemble_stream_[a-z0-9_]+/g)].map((m) => m[0]);
      expect(names.length, panel).toBeGreaterThan(0);
      const labels = new Set<string>();
      for (const m of expr.matchAll(/\bby \(([^)]*)\)/g)) for (const l of (m[1] as string).split(',')) labels.add(l.trim());
      for (const m of expr.matchAll(/\{([^}]*)\}/g)) for (const l of (m[1] as string).matchAll(/([a-z_]+)=/g)) labels.add(l[1] as string);
      for (const name of names) {
        used.add(name);
        expect(known.has(name), `${panel}: ${name} is not a metric of any service`).toBe(true);
        for (const l of labels)
          expect(
            names.some((n) => known.get(n)?.has(l)),
            `${panel}: label ${l} on ${names.join(', ')}`,
          ).toBe(true);
      }
    }
    // The list: each of these is on the dashboard.
    for (const name of [
      'ensemble_stream_worker_predictions_total',
      'ensemble_stream_worker_breaker_state',
      'ensemble_stream_worker_dead_letters_total',
      'ensemble_stream_worker_consumer_lag_messages',
      'ensemble_stream_aggregator_fused_total',
      'ensemble_stream_aggregator_missing_models_total',
      'ensemble_stream_aggregator_open_joins',
      'ensemble_stream_accuracy_ratio',
      'ensemble_stream_model_weight',
    ]) {
      expect(used.has(name), name).toBe(true);
    }
  });

  it('has Prometheus scrape every service', () => {
    const config = readFileSync(join(repoRoot(), 'infra/prometheus/prometheus.yml'), 'utf8');
    for (const port of [9464, 9465, 9466]) expect(config).toContain(`:${port}"`);
  });
});

describe('log sampling', () => {
  it('lets one line per key and interval through and counts the rest', () => {
    const sampler = new LogSampler(1000);
    expect(sampler.admit('w:OVERSIZED', 0)).toEqual({ suppressed: 0 });
    expect(sampler.admit('w:OVERSIZED', 10)).toBeUndefined();
    expect(sampler.admit('w:OVERSIZED', 999)).toBeUndefined();
    expect(sampler.admit('w:UNDECODABLE', 999)).toEqual({ suppressed: 0 });
    expect(sampler.admit('w:OVERSIZED', 1000)).toEqual({ suppressed: 2 });
  });
});
