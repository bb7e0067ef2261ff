import type { Task } from '../core/fusion/index.js';
import type { EnsembleMetrics, FusionStatus, MetricsEntry } from '../shared/records.js';
import { DEFAULT_RELATIVE_ACCURACY } from './ddsketch.js';
import type { StoredState } from './evaluator-store.js';
import { ENSEMBLE, eventFigures, joinRates } from './event-figures.js';
import { learnedWeights, type WeightLearningOptions } from '../core/learned-weights.js';
import { addBucket, emptySums, windowFigures } from './rolling-metrics.js';
import type { RollingWindow } from './window.js';

/**
 * One evaluation: the EnsembleMetrics snapshot (Kafka, Redis) plus the running totals and rates that
 * only the Prometheus endpoint shows. Pure: computed from one atomic read of the stored state.
 */
export interface EvaluationReport {
  snapshot: EnsembleMetrics;
  totals: {
    labelled: Map<string, number>;
    predictions: Map<string, number>;
    late: Map<string, number>;
    missing: Map<string, number>;
    fused: Record<FusionStatus, number>;
  };
  /** Over the event window. */
  join: {
    completeness: number | null;
    partial: number | null;
    /** Per model: its late answers over all its answers. */
    lateRate: Map<string, number | null>;
  };
}

export interface ReportContext {
  task: Task;
  classes: readonly string[];
  models: readonly string[];
  window: RollingWindow;
  learning: WeightLearningOptions;
  nowMs: number;
  source: string;
}

export function buildReport(state: StoredState, ctx: ReportContext): EvaluationReport {
  const events = eventFigures(state.events, DEFAULT_RELATIVE_ACCURACY);
  const totals = eventFigures(state.totals, DEFAULT_RELATIVE_ACCURACY);
  const labelled = new Map<string, number>();
  for (const [field, n] of state.totals) if (field.startsWith('lab:')) labelled.set(field.slice(4), n);

  const losses = new Map<string, number>();
  for (const m of ctx.models) {
    const sum = state.learning.get(`s:${m}`);
    const weight = state.learning.get(`w:${m}`);
    if (sum !== undefined && weight !== undefined && weight > 0) losses.set(m, sum / weight);
  }
  const weights = learnedWeights(ctx.models, losses, ctx.learning);

  // `late`: a model's answers that came after its request was fused without it (the ensemble: all
  // models'); `partial`: fused results the model was missing from (the ensemble: PARTIAL results).
  const entry = (subject: string): MetricsEntry => {
    const held = state.windows.get(subject) ?? new Map<number, Map<string, string>>();
    const end = ctx.window.kind === 'count' ? (labelled.get(subject) ?? 0) : ctx.nowMs;
    const sums = emptySums();
    for (const b of ctx.window.select([...held.keys()], end)) addBucket(sums, held.get(b) ?? new Map());
    const figures = windowFigures(sums, ctx.task, ctx.classes.length);
    const latency = events.latency.get(subject);
    const isEnsemble = subject === ENSEMBLE;
    return {
      subject,
      ...figures,
      latencyP50Ms: latency?.quantile(0.5) ?? null,
      latencyP95Ms: latency?.quantile(0.95) ?? null,
      latencyP99Ms: latency?.quantile(0.99) ?? null,
      late: isEnsemble ? sum(events.late.values()) : (events.late.get(subject) ?? 0),
      partial: isEnsemble ? events.fused.PARTIAL : (events.missing.get(subject) ?? 0),
      weight: isEnsemble ? null : (weights[subject] ?? null),
    };
  };

  const rates = joinRates(events.fused);
  const lateRate = new Map<string, number | null>();
  for (const m of ctx.models) {
    const answers = events.predictions.get(m) ?? 0;
    lateRate.set(m, answers === 0 ? null : (events.late.get(m) ?? 0) / answers);
  }
  return {
    snapshot: {
      generatedAtMs: ctx.nowMs,
      window: ctx.window.toString(),
      source: ctx.source,
      entries: [...ctx.models, ENSEMBLE].map(entry),
    },
    totals: { labelled, predictions: totals.predictions, late: totals.late, missing: totals.missing, fused: totals.fused },
    join: { completeness: rates.completeness, partial: rates.partial, lateRate },
  };
}

function sum(values: Iterable<number>): number {
  let total = 0;
  for (const v of values) total += v;
  return total;
}
