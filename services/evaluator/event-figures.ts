import type { FusionStatus } from '../shared/records.js';
import { DDSketch } from './ddsketch.js';
import { EVAL_COUNTER } from '../shared/redis-keys.js';

/**
 * Figures that need no label, counted as predictions and fused results arrive, in time buckets of the
 * event window. Field names, as the record script writes them into a bucket hash (and the running
 * totals hash): `pred:<model>` predictions, `late:<model>` predictions that came after the fused result
 * that listed the model missing, `miss:<model>` fused results the model was missing from,
 * `fused:<status>` fused results, `lat:<subject>:<sketch bucket>` latency sketch counts (subject: a
 * model, or `ensemble` for end to end).
 */
export const ENSEMBLE = 'ensemble';

export interface EventFigures {
  predictions: Map<string, number>;
  late: Map<string, number>;
  missing: Map<string, number>;
  fused: Record<FusionStatus, number>;
  /** Latency in ms per subject. */
  latency: Map<string, DDSketch>;
}

/** Reads merged bucket fields (or the totals hash, which has no latency fields). */
export function eventFigures(fields: ReadonlyMap<string, number>, relativeAccuracy: number): EventFigures {
  const figures: EventFigures = {
    predictions: new Map(),
    late: new Map(),
    missing: new Map(),
    fused: { COMPLETE: 0, PARTIAL: 0, INSUFFICIENT: 0 },
    latency: new Map(),
  };
  for (const [field, count] of fields) {
    const [kind, name, bucket] = field.split(':');
    if (name === undefined) continue;
    switch (`${kind}:`) {
      case EVAL_COUNTER.predictions:
        figures.predictions.set(name, count);
        break;
      case EVAL_COUNTER.late:
        figures.late.set(name, count);
        break;
      case EVAL_COUNTER.missing:
        figures.missing.set(name, count);
        break;
      case EVAL_COUNTER.fused:
        if (name === 'COMPLETE' || name === 'PARTIAL' || name === 'INSUFFICIENT') figures.fused[name] += count;
        break;
      case EVAL_COUNTER.latency: {
        if (bucket === undefined) break;
        let sketch = figures.latency.get(name);
        if (sketch === undefined) figures.latency.set(name, (sketch = new DDSketch(relativeAccuracy)));
        sketch.addToBucket(bucket, count);
        break;
      }
      default:
        break;
    }
  }
  return figures;
}

/** Share of fused results with every expected model (join completeness), and with some missing. */
export function joinRates(fused: Record<FusionStatus, number>): { completeness: number | null; partial: number | null } {
  const total = fused.COMPLETE + fused.PARTIAL + fused.INSUFFICIENT;
  if (total === 0) return { completeness: null, partial: null };
  return { completeness: fused.COMPLETE / total, partial: fused.PARTIAL / total };
}
