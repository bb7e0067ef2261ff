import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { METRIC_PREFIX } from '../shared/metrics-server.js';
import type { FusedPrediction } from '../shared/records.js';
import type { BreakerState } from './join-breaker.js';

const P = `${METRIC_PREFIX}aggregator_`;

const SECONDS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const JOIN_STATES: readonly BreakerState[] = ['closed', 'half-open', 'open'];

/** The aggregator's running totals (AggregatorStats) and its breakers, read at scrape time. */
export interface AggregatorCounts {
  complete: number;
  partial: number;
  insufficient: number;
  duplicates: number;
  late: Record<string, number>;
  batches: number;
  retriedBatches: number;
  restores: number;
}

export interface BreakerView {
  readonly transitions: Record<string, Record<BreakerState, number>>;
  state(model: string): BreakerState;
}

export interface EnsembleShape {
  strategy: string;
  models: readonly { id: string; weight: number }[];
}

/** Reads how many requests wait in a partition's join (a Redis sorted set's size). */
export type OpenJoins = (partition: number) => Promise<number>;

/**
 * The aggregator's Prometheus instruments. Totals that AggregatorStats and ModelHealth keep are
 * collected from them at scrape time, so /metrics and the tests read the same numbers; what they do
 * not keep (missing models by reason, dead letters by reason, timings, lag) is observed by the hooks
 * below, per committed batch, never per message. Labels: status, model, reason, step, partition.
 */
export class AggregatorMetrics {
  readonly registry: Registry;
  private readonly missing;
  private readonly deadLetters;
  private readonly stepSeconds;
  private readonly endToEnd;
  private readonly lag;
  private readonly partitions = new Set<number>();

  constructor(ensemble: EnsembleShape, counts: AggregatorCounts, breakers: BreakerView, openJoins: OpenJoins | undefined, registry = new Registry()) {
    this.registry = registry;
    const registers = [registry];
    const models = ensemble.models.map((m) => m.id);
    AggregatorMetrics.configured(ensemble, registers);
    AggregatorMetrics.totals(models, counts, breakers, registers);
    this.missing = new Counter({
      name: `${P}missing_models_total`,
      help: 'Models missing from committed fused results, by reason (DEADLINE, ERROR, ABSTAIN, CIRCUIT_OPEN).',
      labelNames: ['model', 'reason'],
      registers,
    });
    this.deadLetters = new Counter({
      name: `${P}dead_letters_total`,
      help: 'Predictions sent to the dead-letter topic, by reason code.',
      labelNames: ['reason'],
      registers,
    });
    this.stepSeconds = new Histogram({
      name: `${P}step_duration_seconds`,
      help: "Duration of a batch's steps: join (the Redis join script), transaction (Kafka produce and commit), batch (all of it).",
      labelNames: ['step'],
      buckets: SECONDS_BUCKETS,
      registers,
    });
    this.endToEnd = new Histogram({
      name: `${P}request_duration_seconds`,
      help: 'From request creation to its fused result, by status.',
      labelNames: ['status'],
      buckets: SECONDS_BUCKETS,
      registers,
    });
    this.lag = new Gauge({
      name: `${P}consumer_lag_messages`,
      help: "Predictions behind the partition's high watermark after the last batch.",
      labelNames: ['partition'],
      registers,
    });
    AggregatorMetrics.openJoins(this.partitions, openJoins, registers);
  }

  /** What the config says: the strategy and each model's configured weight. */
  private static configured(ensemble: EnsembleShape, registers: Registry[]): void {
    new Gauge({ name: `${P}strategy_info`, help: 'The fusion strategy this aggregator runs (value 1).', labelNames: ['strategy'], registers }).set(
      { strategy: ensemble.strategy },
      1,
    );
    const weights = new Gauge({
      name: `${P}configured_weight`,
      help: "A model's weight in the aggregator's config (learned weights: ensemble_stream_model_weight).",
      labelNames: ['model'],
      registers,
    });
    for (const m of ensemble.models) weights.set({ model: m.id }, m.weight);
  }

  /** Requests waiting in the join, read from Redis at scrape time for the partitions this instance handled. */
  private static openJoins(partitions: ReadonlySet<number>, openJoins: OpenJoins | undefined, registers: Registry[]): void {
    new Gauge({
      name: `${P}open_joins`,
      help: 'Requests waiting in the join (not yet fused), per partition this instance handled; read from Redis at scrape time.',
      labelNames: ['partition'],
      registers,
      async collect() {
        if (openJoins === undefined) return;
        const counts = await Promise.all([...partitions].map(async (p) => [p, await openJoins(p).catch(() => Number.NaN)] as const));
        for (const [p, n] of counts) this.set({ partition: String(p) }, n);
      },
    });
  }

  /** The running totals and breaker states, read from the aggregator's counts at scrape time. */
  private static totals(models: readonly string[], counts: AggregatorCounts, breakers: BreakerView, registers: Registry[]): void {
    const total = (name: string, help: string, labelNames: string[], read: () => Iterable<[Record<string, string>, number]>) =>
      new Counter({
        name: P + name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          for (const [labels, n] of read()) this.inc(labels, n);
        },
      });
    total('fused_total', 'Fused results committed, by status.', ['status'], () => [
      [{ status: 'COMPLETE' }, counts.complete],
      [{ status: 'PARTIAL' }, counts.partial],
      [{ status: 'INSUFFICIENT' }, counts.insufficient],
    ]);
    total('late_predictions_total', 'Predictions that arrived after their request was fused, by model.', ['model'], () =>
      models.map((m) => [{ model: m }, counts.late[m] ?? 0]),
    );
    total('duplicate_predictions_total', 'Predictions received again for a model already joined (redeliveries).', [], () => [[{}, counts.duplicates]]);
    total('batches_total', 'Partition batches committed.', [], () => [[{}, counts.batches]]);
    total('retried_batches_total', 'Batches that failed (Redis, Kafka, fencing) and were read again.', [], () => [[{}, counts.retriedBatches]]);
    total('state_restores_total', 'Partitions whose join state was rebuilt from Kafka.', [], () => [[{}, counts.restores]]);
    total('breaker_transitions_total', "Transitions of a model's join breaker, by the state entered.", ['model', 'state'], function* () {
      for (const [model, byState] of Object.entries(breakers.transitions)) for (const s of JOIN_STATES) yield [{ model, state: s }, byState[s]];
    });
    new Gauge({
      name: `${P}breaker_state`,
      help: "1 for the state a model's join breaker is in (closed, half-open, open), else 0.",
      labelNames: ['model', 'state'],
      registers,
      collect() {
        for (const model of models) {
          const now = breakers.state(model);
          for (const s of JOIN_STATES) this.set({ model, state: s }, s === now ? 1 : 0);
        }
      },
    });
  }

  /** A batch was fetched: how far its partition is still behind. */
  fetched(partition: number, offsetLag: string): void {
    this.partitions.add(partition);
    this.lag.set({ partition: String(partition) }, Number(offsetLag));
  }

  /** How long a step of a batch took, ms. */
  step(step: 'join' | 'transaction' | 'batch', ms: number): void {
    this.stepSeconds.observe({ step }, ms / 1000);
  }

  /** A batch committed these fused results and dead letters (reason codes). */
  committed(fused: readonly FusedPrediction[], deadLetterReasons: readonly string[]): void {
    for (const f of fused) {
      this.endToEnd.observe({ status: f.status }, Math.max(0, f.fusedAtMs - f.requestCreatedAtMs) / 1000);
      for (const m of f.missing) this.missing.inc({ model: m.modelId, reason: m.reason });
    }
    for (const reason of deadLetterReasons) this.deadLetters.inc({ reason });
  }
}
