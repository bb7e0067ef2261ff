import { describe, expect, it } from 'vitest';
import { type BreakerState, JoinBreaker } from '../../services/aggregator/join-breaker.js';
import { BREAKER_DEFAULTS } from '../../services/core/ensemble-config.js';
import { type ClosedRequest, ModelHealth, verdicts } from '../../services/aggregator/model-health.js';
import { createLogger } from '../../services/shared/log.js';

const OPTIONS = {
  ...BREAKER_DEFAULTS,
  volumeThreshold: 4,
  errorThresholdPercentage: 50,
  resetTimeout: 1000,
  rollingCountTimeout: 3000,
  probeRequests: 2,
  warmupMs: 0,
};
const quiet = createLogger('test', 'silent');

function breaker() {
  const changes: BreakerState[] = [];
  return { b: new JoinBreaker(OPTIONS, (s) => changes.push(s)), changes };
}

describe('join breaker', () => {
  it('opens on the recent failure share once the volume is reached, not before', () => {
    const { b, changes } = breaker();
    b.failure(0);
    b.failure(10);
    b.failure(20);
    expect(b.state(30)).toBe('closed'); // 3 outcomes < volume 4
    b.failure(40);
    expect(b.state(50)).toBe('open');
    expect(changes).toEqual(['open']);
  });

  it('forgets old successes: a window full of them does not hold a failing model closed', () => {
    const { b } = breaker();
    for (let t = 0; t < 100; t++) b.success(t * 10); // 100 successes in the first second
    for (let t = 0; t < 4; t++) b.failure(5000 + t); // seconds later: only failures in the window
    expect(b.state(5010)).toBe('open');
  });

  it('stays closed while failures are under the threshold', () => {
    const { b } = breaker();
    for (let t = 0; t < 20; t++) {
      b.success(t * 10);
      if (t % 3 === 0) b.failure(t * 10 + 1);
    }
    expect(b.state(300)).toBe('closed');
  });

  it('half-opens after resetTimeout with a bounded number of probes, closes on a probe answered', () => {
    const { b, changes } = breaker();
    for (let t = 0; t < 4; t++) b.failure(t);
    expect(b.probesAvailable(500)).toBe(0);
    expect(b.awaitedByAll(500)).toBe(false);
    expect(b.state(1004)).toBe('half-open');
    expect(b.awaitedByAll(1004)).toBe(false); // only probes wait for it
    expect(b.probesAvailable(1004)).toBe(2);
    b.probesStarted(2);
    expect(b.probesAvailable(1005)).toBe(0);
    b.success(1100);
    expect(b.state(1100)).toBe('closed');
    expect(changes).toEqual(['open', 'half-open', 'closed']);
  });

  it('opens again when a probe misses; an ordinary failure in half-open changes nothing', () => {
    const { b } = breaker();
    for (let t = 0; t < 4; t++) b.failure(t);
    expect(b.state(1004)).toBe('half-open');
    b.failure(1010, false);
    expect(b.state(1010)).toBe('half-open');
    b.failure(1020, true);
    expect(b.state(1020)).toBe('open');
    expect(b.state(2019)).toBe('open'); // a fresh resetTimeout from the probe's failure
    expect(b.state(2020)).toBe('half-open');
  });

  it('closes at once when an open model answers in time anyway', () => {
    const { b } = breaker();
    for (let t = 0; t < 4; t++) b.failure(t);
    b.success(200);
    expect(b.state(200)).toBe('closed');
  });
});

function closed(over: Partial<ClosedRequest> & { answered: ClosedRequest['answered'] }): ClosedRequest {
  return { requestCreatedAtMs: 1000, awaited: new Set(['a', 'b', 'c']), probes: new Set(), ...over };
}

describe('what a closed request says about each model', () => {
  const models = ['a', 'b', 'c'];

  it('an answer is a success, an error or abstention a failure, a missed deadline a failure', () => {
    const v = verdicts(
      models,
      closed({
        answered: new Map([
          ['a', 'OK'],
          ['b', 'ERROR'],
        ]),
      }),
      0,
    );
    expect(Object.fromEntries(v)).toEqual({ a: 'success', b: 'failure', c: 'failure' });
  });

  it('a model nobody waited for learns nothing from not answering', () => {
    const v = verdicts(
      models,
      closed({
        awaited: new Set(['a', 'b']),
        answered: new Map([
          ['a', 'OK'],
          ['b', 'OK'],
        ]),
      }),
      0,
    );
    expect(v.get('c')).toBe('none');
  });

  it('no model is charged for a request only one model answered (never sent, or all late)', () => {
    const forged = verdicts(models, closed({ answered: new Map([['a', 'OK']]) }), 0);
    expect(Object.fromEntries(forged)).toEqual({ a: 'success', b: 'none', c: 'none' });
    expect([...verdicts(models, closed({ answered: new Map() }), 0).values()]).toEqual(['none', 'none', 'none']);
  });

  it('in an ensemble of two, one answer corroborates the request', () => {
    const v = verdicts(['a', 'b'], closed({ awaited: new Set(['a', 'b']), answered: new Map([['a', 'OK']]) }), 0);
    expect(v.get('b')).toBe('failure');
  });

  it('misses of requests created during warm-up are not charged', () => {
    const v = verdicts(models, closed({ requestCreatedAtMs: 500, answered: new Map([['a', 'OK']]) }), 1000);
    expect(Object.fromEntries(v)).toEqual({ a: 'success', b: 'none', c: 'none' });
  });
});

describe('model health', () => {
  it('plans whom new requests wait for: closed models by all, half-open ones by probes only', () => {
    const health = new ModelHealth(['a', 'b'], OPTIONS, quiet, 0);
    expect(health.plan(10)).toEqual({ waitFor: ['a', 'b'], probe: [], probeBudget: 0 });
    for (let t = 0; t < 4; t++) health.record(closed({ requestCreatedAtMs: 10, awaited: new Set(['a', 'b']), answered: new Map([['a', 'OK']]) }), 100 + t);
    // (two models: a's answer alone corroborates each request)
    expect(health.state('b', 200)).toBe('open');
    expect(health.plan(200)).toEqual({ waitFor: ['a'], probe: [], probeBudget: 0 });
    expect(health.plan(1200)).toEqual({ waitFor: ['a'], probe: ['b'], probeBudget: 2 });
    health.probesStarted(['b'], 2);
    expect(health.plan(1201)).toEqual({ waitFor: ['a'], probe: [], probeBudget: 0 });
    health.record(
      closed({
        awaited: new Set(['a', 'b']),
        probes: new Set(['b']),
        answered: new Map([
          ['a', 'OK'],
          ['b', 'OK'],
        ]),
      }),
      1300,
    );
    expect(health.state('b', 1300)).toBe('closed');
    expect(health.transitions.b).toEqual({ open: 1, 'half-open': 1, closed: 1 });
  });

  it('a warm-up trips no breaker even when every request misses models', () => {
    const health = new ModelHealth(['a', 'b', 'c'], { ...OPTIONS, warmupMs: 10_000 }, quiet, 0);
    const slowC = (createdAt: number) =>
      closed({
        requestCreatedAtMs: createdAt,
        answered: new Map([
          ['a', 'OK'],
          ['b', 'OK'],
        ]),
      });
    for (let t = 0; t < 50; t++) health.record(slowC(t * 100), t * 100 + 1500);
    expect(['a', 'b', 'c'].map((m) => health.state(m, 6000))).toEqual(['closed', 'closed', 'closed']);
    // The same misses after the warm-up open c's breaker.
    for (let t = 0; t < 10; t++) health.record(slowC(10_000 + t * 100), 11_500 + t * 100);
    expect(health.state('c', 12_500)).toBe('open');
  });
});
