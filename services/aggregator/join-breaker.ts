import type { BreakerOptions } from '../core/ensemble-config.js';

/**
 * The join's circuit breaker for one model: a pure state machine over the outcomes the aggregator
 * observed, with the clock passed in. It decides whom a request waits for, never what is used: a
 * model that is not awaited still contributes whatever it answered before the request closed.
 *
 *   closed ──(recent failure share ≥ threshold, volume ≥ volumeThreshold)──> open
 *   open ──(resetTimeout passed)──> half-open      open ──(answered in time anyway)──> closed
 *   half-open: the next `probeRequests` new requests wait for the model (the others do not)
 *   half-open ──(a probe answered)──> closed       half-open ──(a probe missed)──> open
 *
 * Outcomes are kept in one-second buckets over `rollingCountTimeout`, so the share reacts to the
 * last few seconds rather than to a window still full of old successes.
 */
export type BreakerState = 'open' | 'half-open' | 'closed';

const BUCKET_MS = 1000;

interface Bucket {
  at: number;
  total: number;
  failures: number;
}

export class JoinBreaker {
  private current: BreakerState = 'closed';
  private openedAt = 0;
  private probesLeft = 0;
  private buckets: Bucket[] = [];

  constructor(
    private readonly options: BreakerOptions,
    /** Called on every state change, with the new state. */
    private readonly onChange: (state: BreakerState) => void = () => undefined,
  ) {}

  state(nowMs: number): BreakerState {
    if (this.current === 'open' && nowMs - this.openedAt >= this.options.resetTimeout) {
      this.probesLeft = this.options.probeRequests;
      this.set('half-open');
    }
    return this.current;
  }

  /** Whether every new request waits for the model now. */
  awaitedByAll(nowMs: number): boolean {
    return this.state(nowMs) === 'closed';
  }

  /** Probe requests that may still be opened in this half-open round (0 unless half-open). */
  probesAvailable(nowMs: number): number {
    return this.state(nowMs) === 'half-open' ? this.probesLeft : 0;
  }

  /** The join opened `n` requests that wait for this half-open model. */
  probesStarted(n: number): void {
    this.probesLeft = Math.max(0, this.probesLeft - n);
  }

  /** The model answered a request in time (before the request closed). */
  success(nowMs: number): void {
    if (this.current !== 'closed') {
      this.buckets = [];
      this.set('closed');
      return;
    }
    this.count(nowMs, false);
  }

  /**
   * The model failed a request: it reported an error or abstained, or it missed the deadline of a
   * request that waited for it. `probe` marks a request opened as a half-open probe.
   */
  failure(nowMs: number, probe = false): void {
    if (this.current === 'half-open' && probe) {
      this.trip(nowMs);
      return;
    }
    if (this.current !== 'closed') return;
    this.count(nowMs, true);
    const { total, failures } = this.window(nowMs);
    if (total >= this.options.volumeThreshold && failures * 100 >= total * this.options.errorThresholdPercentage) this.trip(nowMs);
  }

  private trip(nowMs: number): void {
    this.openedAt = nowMs;
    this.buckets = [];
    this.set('open');
  }

  private count(nowMs: number, failed: boolean): void {
    const at = nowMs - (nowMs % BUCKET_MS);
    let last = this.buckets[this.buckets.length - 1];
    if (last === undefined || last.at !== at) {
      last = { at, total: 0, failures: 0 };
      this.buckets.push(last);
      const oldest = nowMs - this.options.rollingCountTimeout;
      while ((this.buckets[0]?.at ?? Infinity) + BUCKET_MS <= oldest) this.buckets.shift();
    }
    last.total++;
    if (failed) last.failures++;
  }

  private window(nowMs: number): { total: number; failures: number } {
    const oldest = nowMs - this.options.rollingCountTimeout;
    let total = 0;
    let failures = 0;
    for (const b of this.buckets) {
      if (b.at + BUCKET_MS <= oldest) continue;
      total += b.total;
      failures += b.failures;
    }
    return { total, failures };
  }

  private set(state: BreakerState): void {
    if (state === this.current) return;
    this.current = state;
    this.onChange(state);
  }
}
