import { quantile } from '../services/cli/stream-client.js';
import type { FusedSeen, PredictionSeen } from './collector.js';

export interface Distribution {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

/**
 * Where a request's time went, along its critical path (the prediction that completed the join,
 * i.e. the last one produced). The five stages add up to the end-to-end latency exactly:
 *   pickup       feature event created -> that worker took it (Prediction.receivedAtMs)
 *   worker       taken -> its prediction stamped by the worker's producer (inference, encode, send)
 *   toAggregator prediction stamped -> fused (FusedPrediction.fusedAtMs: broker, fetch, the batch's
 *                start; fusedAtMs is the time the join script ran with)
 *   fusing       fused -> the result stamped by the aggregator's producer (Redis join, fusion, encode,
 *                and waiting for the partition's previous transaction)
 *   toClient     stamped -> the client received the committed result (transaction, commit markers, fetch)
 */
export interface PhaseLatency {
  endToEnd: Distribution;
  stages: { pickup: Distribution; worker: Distribution; toAggregator: Distribution; fusing: Distribution; toClient: Distribution };
  /** Requests whose predictions were found, so that stages could be computed. */
  traced: number;
}

export interface Throughput {
  /** Distinct results over first request created -> last result received. */
  overall: number;
  /** Results over the middle 80% of arrivals: the steady rate, without start-up and tail. */
  sustained: number;
  seconds: number;
}

export function distribution(values: number[]): Distribution {
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  const sum = sorted.reduce((a, b) => a + b, 0);
  return {
    count: n,
    p50: quantile(sorted, 0.5),
    p95: quantile(sorted, 0.95),
    p99: quantile(sorted, 0.99),
    max: sorted.at(-1) ?? Number.NaN,
    mean: n === 0 ? Number.NaN : sum / n,
  };
}

export function phaseLatency(
  ids: readonly string[],
  fused: ReadonlyMap<string, FusedSeen>,
  predictions: ReadonlyMap<string, ReadonlyMap<string, PredictionSeen>>,
): PhaseLatency {
  const e2e: number[] = [];
  const pickup: number[] = [];
  const worker: number[] = [];
  const toAggregator: number[] = [];
  const fusing: number[] = [];
  const toClient: number[] = [];
  for (const id of ids) {
    const f = fused.get(id);
    if (f === undefined) continue;
    e2e.push(f.receivedAtMs - f.requestCreatedAtMs);
    let last: PredictionSeen | undefined;
    for (const p of predictions.get(id)?.values() ?? []) if (last === undefined || p.producedAtMs > last.producedAtMs) last = p;
    if (last === undefined) continue;
    pickup.push(last.receivedAtMs - f.requestCreatedAtMs);
    worker.push(last.producedAtMs - last.receivedAtMs);
    toAggregator.push(f.fusedAtMs - last.producedAtMs);
    fusing.push(f.producedAtMs - f.fusedAtMs);
    toClient.push(f.receivedAtMs - f.producedAtMs);
  }
  return {
    endToEnd: distribution(e2e),
    stages: {
      pickup: distribution(pickup),
      worker: distribution(worker),
      toAggregator: distribution(toAggregator),
      fusing: distribution(fusing),
      toClient: distribution(toClient),
    },
    traced: pickup.length,
  };
}

export function throughput(ids: readonly string[], fused: ReadonlyMap<string, FusedSeen>): Throughput {
  const arrivals: number[] = [];
  let firstCreated = Number.POSITIVE_INFINITY;
  for (const id of ids) {
    const f = fused.get(id);
    if (f === undefined) continue;
    arrivals.push(f.receivedAtMs);
    firstCreated = Math.min(firstCreated, f.requestCreatedAtMs);
  }
  if (arrivals.length < 2) return { overall: 0, sustained: 0, seconds: 0 };
  arrivals.sort((a, b) => a - b);
  const seconds = ((arrivals.at(-1) as number) - firstCreated) / 1000;
  const lo = Math.floor(arrivals.length * 0.1);
  const hi = Math.ceil(arrivals.length * 0.9) - 1;
  const middleSeconds = ((arrivals[hi] as number) - (arrivals[lo] as number)) / 1000;
  return {
    overall: arrivals.length / seconds,
    sustained: middleSeconds > 0 ? (hi - lo) / middleSeconds : Number.NaN,
    seconds,
  };
}
