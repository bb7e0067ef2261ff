import type { Logger } from '../shared/log.js';
import type { BreakerOptions } from '../core/ensemble-config.js';
import { type BreakerState, JoinBreaker } from './join-breaker.js';
export type { BreakerState };

/** Whom the requests that a batch opens wait for. */
export interface AwaitPlan {
  /** Models every request waits for (breaker closed). */
  waitFor: string[];
  /** Half-open models that the next `probeBudget` new requests also wait for. */
  probe: string[];
  probeBudget: number;
}

/** What one closed request saw of the models, as the breakers need it. */
export interface ClosedRequest {
  requestCreatedAtMs: number;
  /** Models the request waited for when it closed (probes included). */
  awaited: ReadonlySet<string>;
  /** Half-open models this request was a probe for. */
  probes: ReadonlySet<string>;
  /** Models that answered before the request closed, with their status. */
  answered: ReadonlyMap<string, 'OK' | 'ERROR' | 'ABSTAIN'>;
}

export type Verdict = 'success' | 'failure' | 'none';

/**
 * What a closed request says about each expected model. Pure.
 * - An answer in time is a success; an error or abstention a failure.
 * - A model that did not answer was a failure only if the request waited for it, the request was
 *   corroborated, and it was created after `graceUntil` (the end of the warm-up). Corroborated: at
 *   least two models answered it (one, in an ensemble of two), so the request demonstrably reached
 *   the workers. A prediction for a request that was never sent, or a pipeline that is late as a
 *   whole, then says nothing about the models that did not answer.
 * - A model that nobody waited for and that did not answer: nothing is learnt.
 */
export function verdicts(models: readonly string[], closed: ClosedRequest, graceUntil: number): Map<string, Verdict> {
  const out = new Map<string, Verdict>();
  for (const model of models) {
    const status = closed.answered.get(model);
    if (status !== undefined) {
      out.set(model, status === 'OK' ? 'success' : 'failure');
      continue;
    }
    const corroborated = closed.answered.size >= Math.min(2, models.length - 1);
    const charged = closed.awaited.has(model) && corroborated && closed.requestCreatedAtMs >= graceUntil;
    out.set(model, charged ? 'failure' : 'none');
  }
  return out;
}

/**
 * One join breaker per expected model, fed by what each closed request saw of it (see
 * `verdicts`). Per aggregator instance; the clock is passed in.
 */
export class ModelHealth {
  readonly transitions: Record<string, Record<BreakerState, number>> = {};
  private readonly breakers = new Map<string, JoinBreaker>();

  constructor(
    private readonly models: readonly string[],
    private readonly options: BreakerOptions,
    logger: Logger,
    /** When this instance started, ms. */
    private readonly startedAtMs = Date.now(),
  ) {
    for (const model of models) {
      this.transitions[model] = { open: 0, 'half-open': 0, closed: 0 };
      const breaker = new JoinBreaker(options, (state) => {
        (this.transitions[model] as Record<BreakerState, number>)[state]++;
        logger.warn('model breaker', { model, state });
      });
      this.breakers.set(model, breaker);
    }
  }

  plan(nowMs: number): AwaitPlan {
    const waitFor: string[] = [];
    const probe: string[] = [];
    let probeBudget = 0;
    for (const [model, breaker] of this.breakers) {
      if (breaker.awaitedByAll(nowMs)) waitFor.push(model);
      const probes = breaker.probesAvailable(nowMs);
      if (probes > 0) {
        probe.push(model);
        probeBudget = Math.max(probeBudget, probes);
      }
    }
    return { waitFor, probe, probeBudget };
  }

  /** The join opened `n` probe requests for the models of `plan.probe`. */
  probesStarted(probe: readonly string[], n: number): void {
    if (n > 0) for (const model of probe) this.breakers.get(model)?.probesStarted(n);
  }

  state(model: string, nowMs = Date.now()): BreakerState {
    return this.breakers.get(model)?.state(nowMs) ?? 'closed';
  }

  record(closed: ClosedRequest, nowMs: number): void {
    // While the pipeline warms up (groups joining, first connections, cold code) every model is
    // slow at once: missed deadlines of requests created then are not held against anyone.
    const graceUntil = this.startedAtMs + this.options.warmupMs;
    for (const [model, verdict] of verdicts(this.models, closed, graceUntil)) {
      const breaker = this.breakers.get(model);
      if (verdict === 'success') breaker?.success(nowMs);
      else if (verdict === 'failure') breaker?.failure(nowMs, closed.probes.has(model));
    }
  }
}
