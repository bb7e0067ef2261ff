import type { EnsembleMetrics, MetricsEntry } from '../shared/records.js';
import { type Sample, sumBy } from './prom-text.js';

/** What one scrape of a service's /metrics gave. */
export interface Scrape {
  name: string;
  url: string;
  samples: Sample[];
  /** Why the scrape failed; the target is shown as down. */
  error?: string;
}

export type BreakerStateName = 'closed' | 'half-open' | 'open';

export interface QualityPoint {
  t: number;
  subject: string;
  accuracy: number | null;
  macroF1: number | null;
  logLoss: number | null;
}

/** Everything the page draws, built from the scrapes and the metrics topic only. */
export interface DashboardView {
  builtAtMs: number;
  targets: { name: string; url: string; up: boolean; error: string | null }[];
  strategy: string | null;
  weights: { model: string; configured: number | null; learned: number | null }[];
  fused: { COMPLETE: number; PARTIAL: number; INSUFFICIENT: number };
  missingByReason: Record<string, number>;
  deadLettersByReason: Record<string, number>;
  predictions: { model: string; OK: number; ERROR: number; ABSTAIN: number }[];
  breakers: { model: string; worker: BreakerStateName | null; join: BreakerStateName | null }[];
  /** The latest record of the ensemble-metrics topic, as published. */
  quality: { generatedAtMs: number; window: string; entries: MetricsEntry[] } | null;
  history: QualityPoint[];
}

const SEVERITY: Record<BreakerStateName, number> = { closed: 0, 'half-open': 1, open: 2 };
const W = 'ensemble_stream_worker_';
const A = 'ensemble_stream_aggregator_';

/** Builds the page's figures. Counters of several instances add up; a breaker shows its worst state. Pure. */
export function buildView(scrapes: readonly Scrape[], latest: EnsembleMetrics | undefined, history: readonly QualityPoint[], nowMs: number): DashboardView {
  const all = scrapes.flatMap((s) => s.samples);
  const fused = sumBy(all, `${A}fused_total`, 'status');
  const learned = new Map((latest?.entries ?? []).filter((e) => e.weight !== null).map((e) => [e.subject, e.weight as number]));
  const configured = sumBy(all, `${A}configured_weight`, 'model');
  const weightModels = [...new Set([...configured.keys(), ...learned.keys()])].sort();
  return {
    builtAtMs: nowMs,
    targets: scrapes.map((s) => ({ name: s.name, url: s.url, up: s.error === undefined, error: s.error ?? null })),
    strategy: all.find((s) => s.name === `${A}strategy_info` && s.value === 1)?.labels.strategy ?? null,
    weights: weightModels.map((model) => ({ model, configured: configured.get(model) ?? null, learned: learned.get(model) ?? null })),
    fused: { COMPLETE: fused.get('COMPLETE') ?? 0, PARTIAL: fused.get('PARTIAL') ?? 0, INSUFFICIENT: fused.get('INSUFFICIENT') ?? 0 },
    missingByReason: Object.fromEntries(sumBy(all, `${A}missing_models_total`, 'reason')),
    deadLettersByReason: Object.fromEntries(addUp([sumBy(all, `${W}dead_letters_total`, 'reason'), sumBy(all, `${A}dead_letters_total`, 'reason')])),
    predictions: predictionsByModel(all),
    breakers: breakers(all),
    quality: latest === undefined ? null : { generatedAtMs: latest.generatedAtMs, window: latest.window, entries: latest.entries },
    history: [...history],
  };
}

function addUp(maps: readonly Map<string, number>[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of maps) for (const [k, v] of m) out.set(k, (out.get(k) ?? 0) + v);
  return out;
}

function predictionsByModel(all: readonly Sample[]): DashboardView['predictions'] {
  const byModel = new Map<string, { model: string; OK: number; ERROR: number; ABSTAIN: number }>();
  for (const s of all) {
    if (s.name !== `${W}predictions_total`) continue;
    const model = s.labels.model ?? '';
    const row = byModel.get(model) ?? { model, OK: 0, ERROR: 0, ABSTAIN: 0 };
    const status = s.labels.status;
    if (status === 'OK' || status === 'ERROR' || status === 'ABSTAIN') row[status] += s.value;
    byModel.set(model, row);
  }
  return [...byModel.values()].sort((a, b) => a.model.localeCompare(b.model));
}

function breakers(all: readonly Sample[]): DashboardView['breakers'] {
  const worst = (name: string) => {
    const out = new Map<string, BreakerStateName>();
    for (const s of all) {
      const state = s.labels.state as BreakerStateName | undefined;
      if (s.name !== name || s.value !== 1 || state === undefined || !(state in SEVERITY)) continue;
      const model = s.labels.model ?? '';
      const seen = out.get(model);
      if (seen === undefined || SEVERITY[state] > SEVERITY[seen]) out.set(model, state);
    }
    return out;
  };
  const worker = worst(`${W}breaker_state`);
  const join = worst(`${A}breaker_state`);
  return [...new Set([...worker.keys(), ...join.keys()])].sort().map((model) => ({ model, worker: worker.get(model) ?? null, join: join.get(model) ?? null }));
}

/** Appends a record's quality figures to the history, keeping the last `limit` records' points. Pure. */
export function appendHistory(history: readonly QualityPoint[], record: EnsembleMetrics, limit: number): QualityPoint[] {
  const points = record.entries.map((e) => ({ t: record.generatedAtMs, subject: e.subject, accuracy: e.accuracy, macroF1: e.macroF1, logLoss: e.logLoss }));
  const next = [...history, ...points];
  const times = [...new Set(next.map((p) => p.t))].sort((a, b) => a - b);
  const oldest = times[Math.max(0, times.length - limit)] ?? 0;
  return next.filter((p) => p.t >= oldest);
}
