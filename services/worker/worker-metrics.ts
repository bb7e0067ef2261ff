import type { EventEmitter } from 'node:events';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { METRIC_PREFIX } from '../shared/metrics-server.js';

const P = `${METRIC_PREFIX}worker_`;

/** Seconds; a built-in model answers in microseconds, a remote one in up to its timeout. */
const CALL_BUCKETS = [0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const BATCH_BUCKETS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];

export const BREAKER_STATES = ['closed', 'half-open', 'open'] as const;
export type WorkerBreakerState = (typeof BREAKER_STATES)[number];

/** The worker's running totals (WorkerStats): what /metrics counts is what the tests read. */
export interface WorkerCounts {
  predictions: number;
  errors: number;
  abstains: number;
  deadLettersByReason: Record<string, number>;
  invalidOutputs: number;
}

/** One model of a worker (several when co-located) and its running totals. */
export interface ModelCounts {
  model: string;
  counts: WorkerCounts;
}

/**
 * The worker's Prometheus instruments, one set per process with a `model` label per model it serves
 * (several when co-located). Totals are collected from each model's own counts at scrape time (one
 * source of truth, nothing added per message); latency, batch size, lag and breaker state are
 * observed by the hooks below. Labels are bounded: model, status, reason code, partition.
 */
export class WorkerMetrics {
  readonly registry: Registry;
  private readonly callSeconds;
  private readonly batchSize;
  private readonly lag;
  private readonly transitions;
  private readonly state = new Map<string, WorkerBreakerState>();
  private readonly models: readonly string[];

  constructor(lanes: readonly ModelCounts[], registry = new Registry()) {
    this.registry = registry;
    this.models = lanes.map((l) => l.model);
    const registers = [registry];
    WorkerMetrics.totals(lanes, registers);
    this.callSeconds = new Histogram({
      name: `${P}model_call_duration_seconds`,
      help: 'Duration of one model call (one request, or one partition batch for batch runners), breaker included.',
      labelNames: ['model'],
      buckets: CALL_BUCKETS,
      registers,
    });
    this.batchSize = new Histogram({
      name: `${P}batch_size_messages`,
      help: 'Feature events per partition batch.',
      labelNames: ['model'],
      buckets: BATCH_BUCKETS,
      registers,
    });
    this.lag = new Gauge({
      name: `${P}consumer_lag_messages`,
      help: "Feature events behind the partition's high watermark after the last batch.",
      labelNames: ['model', 'partition'],
      registers,
    });
    this.transitions = new Counter({
      name: `${P}breaker_transitions_total`,
      help: "Transitions of the model call's circuit breaker, by the state entered.",
      labelNames: ['model', 'state'],
      registers,
    });
    const state = this.state;
    const models = this.models;
    new Gauge({
      name: `${P}breaker_state`,
      help: "1 for the state the model call's circuit breaker is in (closed, half-open, open), else 0.",
      labelNames: ['model', 'state'],
      registers,
      collect() {
        for (const model of models) {
          const now = state.get(model) ?? 'closed';
          for (const s of BREAKER_STATES) this.set({ model, state: s }, s === now ? 1 : 0);
        }
      },
    });
  }

  /** The running totals, read from each model's counts at scrape time. */
  private static totals(lanes: readonly ModelCounts[], registers: Registry[]): void {
    new Counter({
      name: `${P}predictions_total`,
      help: 'Predictions published, by status (OK, ERROR: failed call or invalid output, ABSTAIN: breaker open).',
      labelNames: ['model', 'status'],
      registers,
      collect() {
        this.reset();
        for (const { model, counts } of lanes) {
          this.inc({ model, status: 'OK' }, counts.predictions);
          this.inc({ model, status: 'ERROR' }, counts.errors);
          this.inc({ model, status: 'ABSTAIN' }, counts.abstains);
        }
      },
    });
    new Counter({
      name: `${P}invalid_outputs_total`,
      help: 'Model answers that were no valid output (published as ERROR).',
      labelNames: ['model'],
      registers,
      collect() {
        this.reset();
        for (const { model, counts } of lanes) this.inc({ model }, counts.invalidOutputs);
      },
    });
    new Counter({
      name: `${P}dead_letters_total`,
      help: 'Feature events sent to the dead-letter topic, by reason code.',
      labelNames: ['model', 'reason'],
      registers,
      collect() {
        this.reset();
        for (const { model, counts } of lanes) for (const [reason, n] of Object.entries(counts.deadLettersByReason)) this.inc({ model, reason }, n);
      },
    });
  }

  /** Follows a model's breaker transitions (count, current state). */
  watchBreaker(model: string, breaker: EventEmitter): void {
    const to = (s: WorkerBreakerState) => () => {
      this.state.set(model, s);
      this.transitions.inc({ model, state: s });
    };
    breaker.on('open', to('open'));
    breaker.on('halfOpen', to('half-open'));
    breaker.on('close', to('closed'));
  }

  /** One partition batch was fetched (for every model the worker serves): its size, and how far the partition is still behind. */
  batch(partition: number, size: number, offsetLag: string): void {
    for (const model of this.models) {
      this.batchSize.observe({ model }, size);
      this.lag.set({ model, partition: String(partition) }, Number(offsetLag));
    }
  }

  /** One call of `model` took `ms` milliseconds. */
  call(model: string, ms: number): void {
    this.callSeconds.observe({ model }, ms / 1000);
  }

  /** A model's current breaker state, as the dashboard and tests read it. */
  breakerState(model: string = this.models[0] ?? ''): WorkerBreakerState {
    return this.state.get(model) ?? 'closed';
  }
}
