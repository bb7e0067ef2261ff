import { ModelHealth } from '../services/aggregator/model-health.js';
import { AggregatorMetrics } from '../services/aggregator/aggregator-metrics.js';
import { BREAKER_DEFAULTS, CONFIG_DEFAULTS, type AggregatorConfig } from '../services/core/ensemble-config.js';
import { createLogger } from '../services/shared/log.js';
import type { FusedPrediction } from '../services/shared/records.js';
import { WorkerMetrics } from '../services/worker/worker-metrics.js';

/**
 * What the Prometheus instruments cost on the hot path, measured on the services' own instrument
 * classes, calling the hooks exactly as the services do per batch: the worker per fetch (batch
 * size, lag, one call timing per model), the aggregator per committed batch (lag, three step
 * timings, one end-to-end observation per fused result, one count per missing model). Without
 * metrics none of these calls exist, so this is the whole difference a scrape-less run could show;
 * a scrape is timed separately and spread over the results between two scrapes.
 */
export interface MetricsCost {
  /** Fused results per batch in the measurement. */
  batchSize: number;
  aggregatorMicrosPerResult: number;
  workerMicrosPerPrediction: number;
  /** One scrape (registry.metrics()) of each service, µs. */
  aggregatorScrapeMicros: number;
  workerScrapeMicros: number;
  /** A 15 s scrape at 2,000 results/s, spread over those results, µs per result (both services). */
  scrapeMicrosPerResultAt2000: number;
}

const MODELS = ['synthetic-a', 'synthetic-b', 'synthetic-c'];

function config(): AggregatorConfig {
  return {
    task: 'classification',
    classes: Array.from({ length: 26 }, (_, i) => `c${i}`),
    strategy: 'soft-voting',
    models: MODELS.map((id) => ({ id, weight: 1 })),
    ...CONFIG_DEFAULTS,
    breaker: BREAKER_DEFAULTS,
    delivery: 'exactly-once',
  };
}

function fusedResults(n: number): FusedPrediction[] {
  const now = Date.now();
  return Array.from(
    { length: n },
    (_, i) =>
      ({
        requestId: `r${i}`,
        status: i % 10 === 0 ? 'PARTIAL' : 'COMPLETE',
        requestCreatedAtMs: now - 40,
        fusedAtMs: now,
        missing: i % 10 === 0 ? [{ modelId: 'synthetic-c', reason: 'DEADLINE' }] : [],
      }) as unknown as FusedPrediction,
  );
}

function cpuMicros(run: () => void): number {
  const start = process.cpuUsage();
  run();
  const used = process.cpuUsage(start);
  return used.user + used.system;
}

async function scrapeMicros(scrape: () => Promise<string>, times: number): Promise<number> {
  await scrape();
  const start = process.cpuUsage();
  for (let i = 0; i < times; i++) await scrape();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / times;
}

export async function measureMetricsCost(batchSize = 100, batches = 5000): Promise<MetricsCost> {
  const cfg = config();
  const health = new ModelHealth(MODELS, cfg.breaker, createLogger('bench-metrics', 'error'));
  const counts = { complete: 0, partial: 0, insufficient: 0, duplicates: 0, late: {}, batches: 0, retriedBatches: 0, restores: 0 };
  const aggregator = new AggregatorMetrics(cfg, counts, health, async () => 0);
  const workerCounts = { predictions: 0, errors: 0, abstains: 0, deadLettersByReason: {}, invalidOutputs: 0 };
  const worker = new WorkerMetrics([{ model: 'synthetic-a', counts: workerCounts }]);
  const fused = fusedResults(batchSize);
  const onAggregatorBatch = (b: number) => {
    aggregator.fetched(b % 3, '12');
    aggregator.step('join', 1.5);
    aggregator.step('transaction', 8);
    aggregator.step('batch', 10);
    aggregator.committed(fused, []);
  };
  const onWorkerBatch = (b: number) => {
    worker.batch(b % 3, batchSize, '12');
    worker.call('synthetic-a', 0.4);
  };
  // Warm both up first, then measure.
  for (let b = 0; b < 500; b++) {
    onAggregatorBatch(b);
    onWorkerBatch(b);
  }
  const aggregatorMicros = cpuMicros(() => {
    for (let b = 0; b < batches; b++) onAggregatorBatch(b);
  });
  const workerMicros = cpuMicros(() => {
    for (let b = 0; b < batches; b++) onWorkerBatch(b);
  });
  const aggregatorScrape = await scrapeMicros(() => aggregator.registry.metrics(), 200);
  const workerScrape = await scrapeMicros(() => worker.registry.metrics(), 200);
  const resultsPerScrape = 2000 * 15;
  return {
    batchSize,
    aggregatorMicrosPerResult: aggregatorMicros / (batches * batchSize),
    workerMicrosPerPrediction: workerMicros / (batches * batchSize),
    aggregatorScrapeMicros: aggregatorScrape,
    workerScrapeMicros: workerScrape,
    scrapeMicrosPerResultAt2000: (aggregatorScrape + MODELS.length * workerScrape) / resultsPerScrape,
  };
}

export function formatMetricsCost(c: MetricsCost): string[] {
  const f = (n: number) => (n < 10 ? n.toFixed(3) : n.toFixed(0));
  return [
    `Metrics on the hot path (the services' instrument classes, hooks called as per batch of ${c.batchSize}; CPU µs)`,
    `  aggregator ${f(c.aggregatorMicrosPerResult)} µs per fused result, worker ${f(c.workerMicrosPerPrediction)} µs per prediction`,
    `  one scrape: aggregator ${f(c.aggregatorScrapeMicros)} µs, worker ${f(c.workerScrapeMicros)} µs; every 15 s at 2,000 results/s: ${f(c.scrapeMicrosPerResultAt2000)} µs per result (aggregator + 3 workers)`,
  ];
}
