import { Redis } from 'ioredis';
import type { Kafka, Message } from 'kafkajs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type AggregatorConfig, validateAggregatorConfig } from '../../services/core/ensemble-config.js';
import { readEvaluatorSettings } from '../../services/evaluator/config.js';
import { Evaluator } from '../../services/evaluator/evaluator.js';
import { LearnedWeights } from '../../services/core/learned-weights.js';
import { argmax, evaluateProbabilities } from '../../services/ml/metrics.js';
import { createRng, type Rng } from '../../services/ml/random.js';
import { codecs } from '../../services/shared/codec.js';
import type { EnsembleMetrics, FusedPrediction, MetricsEntry, Prediction } from '../../services/shared/records.js';
import { RedisKeys } from '../../services/shared/redis-keys.js';
import type { Topics } from '../../services/shared/topics.js';
import { uniqueName } from '../support/ids.js';
import { testInfra } from '../support/infra.js';
import { classificationConfig, createTestTopics, produce, quietLogger, tail, testKafka } from '../support/pipeline.js';

const CLASSES = ['a', 'b', 'c'];
const SHARP = 'm-sharp';
const BLUNT = 'm-blunt';
const MODELS = [SHARP, BLUNT];
const ACCURACY = 0.01;

// ---------------------------------------------------------------------------------------- the script

interface ScriptedPrediction {
  modelId: string;
  status: 'OK' | 'ERROR';
  probabilities: number[] | null;
  latencyMs: number;
}

/** One request as the test scripts it: every model's answer, the fused result, the truth. */
interface ScriptedRequest {
  id: string;
  createdAtMs: number;
  truth: number;
  labelled: boolean;
  predictions: ScriptedPrediction[];
  fused: FusedPrediction;
}

/** A distribution leaning toward `toward` by `lean` (0: uniform noise; large: nearly certain). */
function leaning(rng: Rng, toward: number, lean: number): number[] {
  const raw = CLASSES.map((_, c) => rng() + (c === toward ? lean : 0));
  const total = raw.reduce((a, b) => a + b, 0);
  return raw.map((x) => x / total);
}

/**
 * Requests of two models with every case the evaluator distinguishes: complete results, a model
 * missing at the deadline whose answer comes later (late) or never, a model that fails, a result with
 * no answer at all, and requests that never get a label.
 */
function script(seed: number, from: number, count: number, lean: Record<string, number>, prefix = 'req'): ScriptedRequest[] {
  const rng = createRng(seed);
  const baseMs = Date.now() - 120_000;
  const requests: ScriptedRequest[] = [];
  for (let r = from; r < from + count; r++) {
    const id = `${prefix}-${r}`;
    const createdAtMs = baseMs + r * 20;
    const truth = Math.floor(rng() * CLASSES.length);
    const kind = r % 10;
    const predictions: ScriptedPrediction[] = [];
    const missing: FusedPrediction['missing'] = [];
    const present: ScriptedPrediction[] = [];
    for (const modelId of MODELS) {
      const latencyMs = 5 + Math.floor(rng() * 400);
      const probabilities = leaning(rng, truth, lean[modelId] ?? 0);
      const fails = kind === 7 || (kind === 3 && modelId === BLUNT);
      const tooSlow = (kind === 0 || kind === 5) && modelId === BLUNT;
      if (fails) {
        predictions.push({ modelId, status: 'ERROR', probabilities: null, latencyMs });
        missing.push({ modelId, reason: 'ERROR', detail: 'boom' });
      } else if (tooSlow) {
        missing.push({ modelId, reason: 'DEADLINE', detail: null });
        // kind 0: the answer turns up after the deadline; kind 5: never.
        if (kind === 0) predictions.push({ modelId, status: 'OK', probabilities, latencyMs: 2500 + latencyMs });
      } else {
        const p: ScriptedPrediction = { modelId, status: 'OK', probabilities, latencyMs };
        predictions.push(p);
        present.push(p);
      }
    }
    const fusedProbabilities =
      present.length === 0 ? null : CLASSES.map((_, c) => present.reduce((s, p) => s + (p.probabilities?.[c] ?? 0), 0) / present.length);
    const fusedAtMs = missing.some((m) => m.reason === 'DEADLINE') ? createdAtMs + 2000 : createdAtMs + Math.max(...predictions.map((p) => p.latencyMs)) + 3;
    requests.push({
      id,
      createdAtMs,
      truth,
      labelled: r % 9 !== 4,
      predictions,
      fused: {
        requestId: id,
        status: present.length === MODELS.length ? 'COMPLETE' : present.length > 0 ? 'PARTIAL' : 'INSUFFICIENT',
        strategy: 'soft-voting',
        label: fusedProbabilities === null ? null : (CLASSES[argmax(fusedProbabilities)] ?? null),
        probabilities: fusedProbabilities,
        value: null,
        contributors: present.map((p) => ({ modelId: p.modelId, modelVersion: 'v1', weight: 1 / present.length })),
        missing,
        requestCreatedAtMs: createdAtMs,
        fusedAtMs,
      },
    });
  }
  return requests;
}

function predictionMessages(requests: readonly ScriptedRequest[]): Message[] {
  return requests.flatMap((r) =>
    r.predictions.map((p) => {
      const value: Prediction = {
        requestId: r.id,
        modelId: p.modelId,
        modelVersion: 'v1',
        status: p.status,
        probabilities: p.probabilities,
        value: null,
        error: p.status === 'OK' ? null : 'boom',
        requestCreatedAtMs: r.createdAtMs,
        deadlineMs: null,
        receivedAtMs: r.createdAtMs + 1,
        inferenceMicros: 100,
      };
      // The broker keeps the producer's timestamp: that is when the answer was out.
      return { key: r.id, value: codecs.prediction.encode(value), headers: codecs.prediction.headers, timestamp: String(r.createdAtMs + p.latencyMs) };
    }),
  );
}

function fusedMessages(requests: readonly ScriptedRequest[]): Message[] {
  return requests.map((r) => ({ key: r.id, value: codecs.fusedPrediction.encode(r.fused), headers: codecs.fusedPrediction.headers }));
}

function labelMessages(requests: readonly ScriptedRequest[], observedAtMs = Date.now()): Message[] {
  return requests
    .filter((r) => r.labelled)
    .map((r) => ({
      key: r.id,
      value: codecs.label.encode({ requestId: r.id, label: CLASSES[r.truth] ?? null, value: null, observedAtMs }),
      headers: codecs.label.headers,
    }));
}

// ------------------------------------------------------------------------------ the offline reference

interface Expected {
  labelled: number;
  accuracy: number;
  macroPrecision: number;
  macroRecall: number;
  macroF1: number;
  logLoss: number;
  brier: number;
  latencies: number[];
  late: number;
  partial: number;
}

/** What every subject's entry must say, computed with services/ml/metrics.ts from the script alone. */
function offline(requests: readonly ScriptedRequest[]): Map<string, Expected> {
  const out = new Map<string, Expected>();
  const figures = (rows: { truth: number; probabilities: number[] }[]) => {
    const m = evaluateProbabilities(
      rows.map((r) => r.truth),
      rows.map((r) => r.probabilities),
    );
    return {
      labelled: rows.length,
      accuracy: m.accuracy,
      macroPrecision: m.macroPrecision,
      macroRecall: m.macroRecall,
      macroF1: m.macroF1,
      logLoss: m.logLoss,
      brier: m.brier,
    };
  };
  for (const model of MODELS) {
    const rows = requests.flatMap((r) =>
      r.predictions
        .filter((p) => r.labelled && p.modelId === model && p.status === 'OK')
        .map((p) => ({ truth: r.truth, probabilities: p.probabilities ?? [] })),
    );
    out.set(model, {
      ...figures(rows),
      latencies: requests.flatMap((r) => r.predictions.filter((p) => p.modelId === model).map((p) => p.latencyMs)),
      late: requests.filter(
        (r) => r.fused.missing.some((m) => m.modelId === model && m.reason === 'DEADLINE') && r.predictions.some((p) => p.modelId === model),
      ).length,
      partial: requests.filter((r) => r.fused.missing.some((m) => m.modelId === model)).length,
    });
  }
  const fusedRows = requests
    .filter((r) => r.labelled && r.fused.probabilities !== null)
    .map((r) => ({ truth: r.truth, probabilities: r.fused.probabilities ?? [] }));
  out.set('ensemble', {
    ...figures(fusedRows),
    latencies: requests.map((r) => r.fused.fusedAtMs - r.createdAtMs),
    late: [...out.values()].reduce((s, e) => s + e.late, 0),
    partial: requests.filter((r) => r.fused.status === 'PARTIAL').length,
  });
  return out;
}

function exactQuantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(q * (sorted.length - 1))] ?? Number.NaN;
}

function expectEntry(entry: MetricsEntry | undefined, expected: Expected | undefined): void {
  expect(entry).toBeDefined();
  expect(expected).toBeDefined();
  if (entry === undefined || expected === undefined) return;
  const what = entry.subject;
  expect(entry.labelled, what).toBe(expected.labelled);
  expect(entry.accuracy, what).toBeCloseTo(expected.accuracy, 12);
  expect(entry.macroPrecision, what).toBeCloseTo(expected.macroPrecision, 12);
  expect(entry.macroRecall, what).toBeCloseTo(expected.macroRecall, 12);
  expect(entry.macroF1, what).toBeCloseTo(expected.macroF1, 12);
  expect(entry.logLoss, what).toBeCloseTo(expected.logLoss, 9);
  expect(entry.brier, what).toBeCloseTo(expected.brier, 9);
  expect(entry.late, what).toBe(expected.late);
  expect(entry.partial, what).toBe(expected.partial);
  for (const [q, got] of [
    [0.5, entry.latencyP50Ms],
    [0.95, entry.latencyP95Ms],
    [0.99, entry.latencyP99Ms],
  ] as const) {
    const exact = exactQuantile(expected.latencies, q);
    expect(Math.abs((got ?? Number.NaN) - exact), `${what} p${q * 100}: ${got} vs ${exact}`).toBeLessThanOrEqual(ACCURACY * exact);
  }
}

/** True once a snapshot has every subject's labelled count as expected. */
function complete(snapshot: EnsembleMetrics, expected: Map<string, Expected>): boolean {
  return [...expected].every(([subject, e]) => snapshot.entries.find((x) => x.subject === subject)?.labelled === e.labelled);
}

// ---------------------------------------------------------------------------------------- harness

async function waitFor<T>(probe: () => T | undefined | Promise<T | undefined>, what: string, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

type Sample = { name: string; labels: Record<string, string>; value: number };

/** Parses the Prometheus text format. */
function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (m === null) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)) labels[l[1] as string] = l[2] as string;
    samples.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return samples;
}

function sampleOf(samples: readonly Sample[], name: string, labels: Record<string, string>): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

class Harness {
  readonly evaluators: Evaluator[] = [];
  readonly connections: Redis[] = [];
  readonly keys = new RedisKeys(uniqueName('t'));
  readonly groupId = uniqueName('evaluator');

  constructor(
    readonly kafka: Kafka,
    readonly topics: Topics,
    readonly config: AggregatorConfig = classificationConfig(MODELS),
  ) {}

  redis(): Redis {
    const redis = new Redis(testInfra().redisUrl);
    this.connections.push(redis);
    return redis;
  }

  async start(env: NodeJS.ProcessEnv = {}, instanceId = uniqueName('eval')): Promise<Evaluator> {
    const settings = readEvaluatorSettings(MODELS, {
      ES_METRICS_INTERVAL_MS: '250',
      ES_METRICS_PORT: '0',
      ES_EVAL_EVENT_WINDOW_MS: '3600000',
      ...env,
    });
    const evaluator = new Evaluator({
      kafka: this.kafka,
      redis: this.redis(),
      keys: this.keys,
      topics: this.topics,
      config: this.config,
      settings,
      instanceId,
      logger: quietLogger,
      groupId: this.groupId,
    });
    await evaluator.start();
    this.evaluators.push(evaluator);
    return evaluator;
  }

  async stop(evaluator: Evaluator): Promise<void> {
    await evaluator.stop();
    this.evaluators.splice(this.evaluators.indexOf(evaluator), 1);
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.evaluators.map((e) => e.stop()));
    const redis = this.redis();
    const stale = await redis.keys(this.keys.all());
    if (stale.length > 0) await redis.del(...stale);
    for (const c of this.connections) c.disconnect();
  }
}

async function metricsText(evaluator: Evaluator): Promise<Sample[]> {
  const res = await fetch(`http://127.0.0.1:${evaluator.metricsPort()}/metrics`);
  expect(res.status).toBe(200);
  return parseExposition(await res.text());
}

// ------------------------------------------------------------------------------------------- tests

describe('the evaluator on real Kafka and Redis', () => {
  let kafka: Kafka;
  let harness: Harness | undefined;

  beforeAll(() => {
    kafka = testKafka('evaluator-test');
  });
  afterEach(async () => {
    await harness?.close();
    harness = undefined;
  });

  async function setUp(partitions = 3, config?: AggregatorConfig): Promise<Harness> {
    harness = new Harness(kafka, await createTestTopics(kafka, partitions), config);
    return harness;
  }

  /**
   * Half the requests get their label before any answer, half after; late answers reach the evaluator
   * before the fused result in one half and after it in the other.
   */
  async function playBothOrders(h: Harness, requests: readonly ScriptedRequest[], progress: () => { predictions: number; fused: number; labels: number }) {
    const half = Math.floor(requests.length / 2);
    const first = requests.slice(0, half);
    const second = requests.slice(half);
    const base = progress();
    const count = (rs: readonly ScriptedRequest[]) => ({ predictions: predictionMessages(rs).length, fused: rs.length, labels: labelMessages(rs).length });
    const c1 = count(first);
    const c2 = count(second);

    await produce(h.kafka, h.topics.labels, labelMessages(first));
    await waitFor(() => (progress().labels >= base.labels + c1.labels ? true : undefined), 'labels of the first half');
    await produce(h.kafka, h.topics.predictions, predictionMessages(first));
    await waitFor(() => (progress().predictions >= base.predictions + c1.predictions ? true : undefined), 'predictions of the first half');
    await produce(h.kafka, h.topics.fused, fusedMessages(first));

    await produce(h.kafka, h.topics.fused, fusedMessages(second));
    await waitFor(() => (progress().fused >= base.fused + c1.fused + c2.fused ? true : undefined), 'fused results');
    await produce(h.kafka, h.topics.predictions, predictionMessages(second));
    await waitFor(() => (progress().predictions >= base.predictions + c1.predictions + c2.predictions ? true : undefined), 'predictions of the second half');
    await produce(h.kafka, h.topics.labels, labelMessages(second));
  }

  const statsOf = (evaluators: readonly Evaluator[]) => () =>
    evaluators.reduce((s, e) => ({ predictions: s.predictions + e.stats.predictions, fused: s.fused + e.stats.fused, labels: s.labels + e.stats.labels }), {
      predictions: 0,
      fused: 0,
      labels: 0,
    });

  it('publishes on Kafka and on /metrics the figures an offline computation gives over the same predictions', async () => {
    const h = await setUp();
    const snapshots = await tail(kafka, h.topics.metrics, (v, headers) => codecs.ensembleMetrics.decode(v, headers as never));
    try {
      const evaluator = await h.start();
      const requests = script(1, 0, 80, { [SHARP]: 1.5, [BLUNT]: 0.2 });
      await playBothOrders(h, requests, statsOf([evaluator]));
      const expected = offline(requests);

      const snapshot = await waitFor(
        () => snapshots.received.map((s) => s.value).find((s) => complete(s, expected)),
        'a complete snapshot on the metrics topic',
      );
      expect(snapshot.window).toBe('count:1000');
      for (const subject of [...MODELS, 'ensemble'])
        expectEntry(
          snapshot.entries.find((e) => e.subject === subject),
          expected.get(subject),
        );
      // Learned from the same labels, the sharper model already weighs more.
      const weight = (s: string) => snapshot.entries.find((e) => e.subject === s)?.weight ?? Number.NaN;
      expect(weight(SHARP) + weight(BLUNT)).toBeCloseTo(1, 12);
      expect(weight(SHARP)).toBeGreaterThan(weight(BLUNT));

      // The endpoint shows the same figures (the same snapshot, or a later one over the same state).
      const exposed = await metricsText(evaluator);
      for (const e of snapshot.entries) {
        const subject = { subject: e.subject };
        expect(sampleOf(exposed, 'ensemble_stream_accuracy_ratio', subject)).toBeCloseTo(e.accuracy ?? Number.NaN, 12);
        expect(sampleOf(exposed, 'ensemble_stream_macro_precision_ratio', subject)).toBeCloseTo(e.macroPrecision ?? Number.NaN, 12);
        expect(sampleOf(exposed, 'ensemble_stream_macro_recall_ratio', subject)).toBeCloseTo(e.macroRecall ?? Number.NaN, 12);
        expect(sampleOf(exposed, 'ensemble_stream_macro_f1_ratio', subject)).toBeCloseTo(e.macroF1 ?? Number.NaN, 12);
        expect(sampleOf(exposed, 'ensemble_stream_log_loss', subject)).toBeCloseTo(e.logLoss ?? Number.NaN, 12);
        expect(sampleOf(exposed, 'ensemble_stream_brier_score', subject)).toBeCloseTo(e.brier ?? Number.NaN, 12);
        expect(sampleOf(exposed, 'ensemble_stream_window_labelled', subject)).toBe(e.labelled);
        expect(sampleOf(exposed, 'ensemble_stream_labelled_total', subject)).toBe(e.labelled);
        expect(sampleOf(exposed, 'ensemble_stream_latency_seconds', { ...subject, quantile: '0.5' })).toBeCloseTo((e.latencyP50Ms ?? Number.NaN) / 1000, 12);
        expect(sampleOf(exposed, 'ensemble_stream_latency_seconds', { ...subject, quantile: '0.99' })).toBeCloseTo((e.latencyP99Ms ?? Number.NaN) / 1000, 12);
        if (e.subject !== 'ensemble') {
          expect(sampleOf(exposed, 'ensemble_stream_late_total', { model: e.subject })).toBe(e.late === 0 ? undefined : e.late);
          expect(sampleOf(exposed, 'ensemble_stream_model_weight', { model: e.subject })).toBeCloseTo(e.weight ?? Number.NaN, 12);
        }
      }
      const fusedTotal = (status: string) => sampleOf(exposed, 'ensemble_stream_fused_total', { status }) ?? 0;
      const statuses = requests.map((r) => r.fused.status);
      for (const status of ['COMPLETE', 'PARTIAL', 'INSUFFICIENT']) expect(fusedTotal(status)).toBe(statuses.filter((s) => s === status).length);
      expect(sampleOf(exposed, 'ensemble_stream_join_completeness_ratio', {})).toBeCloseTo(
        statuses.filter((s) => s === 'COMPLETE').length / requests.length,
        12,
      );
      expect(sampleOf(exposed, 'ensemble_stream_partial_ratio', {})).toBeCloseTo(statuses.filter((s) => s === 'PARTIAL').length / requests.length, 12);

      // Request state and event buckets expire; nothing was scored twice although labels and answers crossed.
      const redis = h.redis();
      expect(await redis.pttl(h.keys.evaluatorRequest('req-1'))).toBeGreaterThan(0);
      const eventWindow = readEvaluatorSettings(MODELS, { ES_EVAL_EVENT_WINDOW_MS: '3600000' }).eventWindow;
      const second = requests[1];
      expect(
        await redis.pttl(h.keys.evaluatorEventBucket(h.keys.evaluatorShard(second?.id ?? ''), eventWindow.bucketOf(second?.fused.fusedAtMs ?? 0))),
      ).toBeGreaterThan(0);
      expect(await redis.pttl(h.keys.evaluatorScored('ensemble', 'req-1'))).toBeGreaterThan(0);
      expect(evaluator.stats.scored).toBe([...expected.values()].reduce((s, e) => s + e.labelled, 0));
    } finally {
      await snapshots.stop();
    }
  });

  it('continues from the stored state after a restart, and two instances publish the same figures', async () => {
    const h = await setUp();
    const snapshots = await tail(kafka, h.topics.metrics, (v, headers) => codecs.ensembleMetrics.decode(v, headers as never));
    try {
      const lean = { [SHARP]: 1.2, [BLUNT]: 0.4 };
      const before = script(2, 0, 50, lean);
      const first = await h.start();
      await playBothOrders(h, before, statsOf([first]));
      const expectedBefore = offline(before);
      const early = await waitFor(() => snapshots.received.map((s) => s.value).find((s) => complete(s, expectedBefore)), 'the first instance to finish');
      expectEntry(
        early.entries.find((e) => e.subject === SHARP),
        expectedBefore.get(SHARP),
      );
      await h.stop(first);

      // Two new instances in the same group and namespace: the state is Redis', not theirs.
      const a = await h.start({}, 'eval-a');
      const b = await h.start({}, 'eval-b');
      const after = script(3, 50, 50, lean);
      await playBothOrders(h, after, statsOf([a, b]));
      const expected = offline([...before, ...after]);
      for (const source of ['eval-a', 'eval-b']) {
        const snapshot = await waitFor(
          () => snapshots.received.map((s) => s.value).find((s) => s.source === source && complete(s, expected)),
          `a complete snapshot from ${source}`,
        );
        for (const subject of [...MODELS, 'ensemble'])
          expectEntry(
            snapshot.entries.find((e) => e.subject === subject),
            expected.get(subject),
          );
      }
      const totals = await metricsText(a);
      expect(sampleOf(totals, 'ensemble_stream_labelled_total', { subject: SHARP })).toBe(expected.get(SHARP)?.labelled);
    } finally {
      await snapshots.stop();
    }
  });

  it('moves the learned weights toward a model that becomes better and away from one that degrades', async () => {
    const h = await setUp();
    const evaluator = await h.start({
      ES_WEIGHT_HALF_LIFE: '15',
      ES_WEIGHT_ETA: '2',
      ES_WEIGHT_MIN: '0.05',
      ES_WEIGHT_MAX: '0.95',
      ES_EVAL_WINDOW: 'count:40',
    });
    const reader = new LearnedWeights(h.redis(), h.keys, MODELS);
    expect(await reader.current()).toEqual({ [SHARP]: 0.5, [BLUNT]: 0.5 });
    expect(await reader.bestModel()).toBeUndefined();

    const settle = async (requests: readonly ScriptedRequest[]) => {
      const expected = offline(requests);
      const labelled = (expected.get(SHARP)?.labelled ?? 0) + (expected.get(BLUNT)?.labelled ?? 0) + (expected.get('ensemble')?.labelled ?? 0);
      const scored = evaluator.stats.scored;
      await produce(h.kafka, h.topics.predictions, predictionMessages(requests));
      await produce(h.kafka, h.topics.fused, fusedMessages(requests));
      await produce(h.kafka, h.topics.labels, labelMessages(requests));
      await waitFor(() => (evaluator.stats.scored >= scored + labelled ? true : undefined), 'every label scored');
      await evaluator.publish();
    };

    // Phase 1: the first model is the sharp one.
    await settle(script(4, 0, 60, { [SHARP]: 3, [BLUNT]: 0 }, 'p1'));
    const early = await reader.current();
    expect(early[SHARP]).toBeGreaterThan(0.7);
    expect(early[SHARP]! + early[BLUNT]!).toBeCloseTo(1, 12);
    expect(await reader.bestModel()).toBe(SHARP);
    expect(await reader.bestModel('accuracy')).toBe(SHARP);

    // Phase 2: it degrades to noise while the other becomes sharp.
    await settle(script(5, 60, 80, { [SHARP]: 0, [BLUNT]: 3 }, 'p2'));
    const late = await reader.current();
    expect(late[BLUNT]).toBeGreaterThan(0.7);
    expect(late[BLUNT]).toBeGreaterThan(early[BLUNT]!);
    expect(late[SHARP]).toBeLessThan(early[SHARP]!);
    for (const w of Object.values(late)) {
      expect(w).toBeGreaterThanOrEqual(0.05 - 1e-12);
      expect(w).toBeLessThanOrEqual(0.95 + 1e-12);
    }
    // The rolling window (the last 40 labelled) now holds only the second phase.
    expect(await reader.bestModel()).toBe(BLUNT);
  });

  it('keeps the last N labelled in a count window and the last T ms in a time window, in Redis', async () => {
    // One partition: labels are scored in the order they were produced.
    const h = await setUp(1);
    const counted = await h.start({ ES_EVAL_WINDOW: 'count:5' });
    // The blunt model is right on the first 7 requests and wrong on the last 5.
    const requests = script(6, 0, 12, { [SHARP]: 0, [BLUNT]: 0 }, 'cw').map((r, i) => {
      const picked = i < 7 ? r.truth : (r.truth + 1) % CLASSES.length;
      const probabilities = CLASSES.map((_, c) => (c === picked ? 0.8 : 0.1));
      return { ...r, labelled: true, predictions: [{ modelId: BLUNT, status: 'OK' as const, probabilities, latencyMs: 10 }] };
    });
    await produce(h.kafka, h.topics.predictions, predictionMessages(requests));
    await waitFor(() => (counted.stats.predictions >= 12 ? true : undefined), 'the predictions');
    await produce(h.kafka, h.topics.labels, labelMessages(requests));
    await waitFor(() => (counted.stats.scored >= 12 ? true : undefined), 'every label scored');
    const byCount = (await counted.publish()).snapshot.entries.find((e) => e.subject === BLUNT);
    expect(byCount).toMatchObject({ labelled: 5, accuracy: 0 });
    expect(byCount?.logLoss).toBeCloseTo(-Math.log(0.1), 12);
    // In Redis: one label per bucket for N = 5; the buckets behind the window are gone, the rest expire.
    const redis = h.redis();
    expect(await redis.zrange(h.keys.evaluatorWindowIndex(BLUNT), 0, -1)).toEqual(['7', '8', '9', '10', '11']);
    expect(await redis.exists(h.keys.evaluatorWindowBucket(BLUNT, 6))).toBe(0);
    expect(await redis.pttl(h.keys.evaluatorWindowBucket(BLUNT, 11))).toBeGreaterThan(0);

    // A label for a class the ensemble does not know is dead-lettered, not scored.
    const deadLetters = await tail(kafka, h.topics.deadLetters, (v, headers) => codecs.deadLetter.decode(v, headers as never));
    try {
      await produce(h.kafka, h.topics.labels, [
        {
          key: 'cw-0',
          value: codecs.label.encode({ requestId: 'cw-0', label: 'zebra', value: null, observedAtMs: Date.now() }),
          headers: codecs.label.headers,
        },
      ]);
      const dead = await waitFor(() => deadLetters.received[0]?.value, 'the dead letter');
      expect(dead).toMatchObject({ sourceTopic: h.topics.labels, reasonCode: 'INVALID_VALUE', service: 'evaluator' });
      expect(counted.stats.deadLetters).toBe(1);
    } finally {
      await deadLetters.stop();
    }
    await h.stop(counted);

    // The same stored samples cannot be re-windowed, so the time window gets a namespace of its own.
    const timed = new Harness(kafka, await createTestTopics(kafka, 1));
    try {
      const evaluator = await timed.start({ ES_EVAL_WINDOW: 'time:60000' });
      const now = Date.now();
      const rs = script(7, 0, 10, { [SHARP]: 2, [BLUNT]: 2 }, 'tw').map((r) => ({ ...r, labelled: true }));
      await produce(timed.kafka, timed.topics.predictions, predictionMessages(rs));
      await produce(timed.kafka, timed.topics.fused, fusedMessages(rs));
      // Six labels observed two minutes ago (outside the window), four just now.
      await produce(timed.kafka, timed.topics.labels, [...labelMessages(rs.slice(0, 6), now - 120_000), ...labelMessages(rs.slice(6), now)]);
      const withAnswers = offline(rs).get(SHARP)?.labelled ?? 0;
      await waitFor(() => (evaluator.stats.labels >= 10 && evaluator.stats.fused >= 10 ? true : undefined), 'the labels');
      const report = await waitFor(async () => {
        const r = await evaluator.publish();
        return (r.totals.labelled.get(SHARP) ?? 0) >= withAnswers ? r : undefined;
      }, 'every label scored');
      const recent = offline(rs.slice(6)).get(SHARP);
      expect(report.snapshot.window).toBe('time:60000');
      expect(report.snapshot.entries.find((e) => e.subject === SHARP)?.labelled).toBe(recent?.labelled);
      expect(report.snapshot.entries.find((e) => e.subject === SHARP)?.accuracy).toBeCloseTo(recent?.accuracy ?? Number.NaN, 12);
    } finally {
      await timed.close();
    }
  });

  it('scores regression answers by MAE and RMSE, and learns weights from squared errors', async () => {
    const config = validateAggregatorConfig({ task: 'regression', strategy: 'weighted-average', models: MODELS.map((id) => ({ id })) });
    const h = await setUp(3, config);
    const evaluator = await h.start();
    const rng = createRng(8);
    const createdAtMs = Date.now() - 10_000;
    const rows = Array.from({ length: 40 }, (_, r) => {
      const truth = rng() * 100;
      const answers: Record<string, number> = { [SHARP]: truth + (rng() - 0.5) * 2, [BLUNT]: truth + (rng() - 0.5) * 30 };
      return { id: `rg-${r}`, truth, answers, fused: (answers[SHARP]! + answers[BLUNT]!) / 2 };
    });
    const predictions = rows.flatMap((row) =>
      MODELS.map((modelId) => ({
        key: row.id,
        headers: codecs.prediction.headers,
        timestamp: String(createdAtMs + 20),
        value: codecs.prediction.encode({
          requestId: row.id,
          modelId,
          modelVersion: 'v1',
          status: 'OK',
          probabilities: null,
          value: row.answers[modelId] ?? null,
          error: null,
          requestCreatedAtMs: createdAtMs,
          deadlineMs: null,
          receivedAtMs: createdAtMs,
          inferenceMicros: 5,
        }),
      })),
    );
    const fused = rows.map((row) => ({
      key: row.id,
      headers: codecs.fusedPrediction.headers,
      value: codecs.fusedPrediction.encode({
        requestId: row.id,
        status: 'COMPLETE',
        strategy: 'weighted-average',
        label: null,
        probabilities: null,
        value: row.fused,
        contributors: MODELS.map((modelId) => ({ modelId, modelVersion: 'v1', weight: 0.5 })),
        missing: [],
        requestCreatedAtMs: createdAtMs,
        fusedAtMs: createdAtMs + 30,
      }),
    }));
    const labels = rows.map((row) => ({
      key: row.id,
      headers: codecs.label.headers,
      value: codecs.label.encode({ requestId: row.id, label: null, value: row.truth, observedAtMs: Date.now() }),
    }));
    await produce(h.kafka, h.topics.labels, labels);
    await produce(h.kafka, h.topics.predictions, predictions);
    await produce(h.kafka, h.topics.fused, fused);
    await waitFor(() => (evaluator.stats.scored >= rows.length * 3 ? true : undefined), 'every label scored');

    const { snapshot } = await evaluator.publish();
    const errors = (pick: (row: (typeof rows)[number]) => number) => rows.map((row) => pick(row) - row.truth);
    const mae = (e: number[]) => e.reduce((s, x) => s + Math.abs(x), 0) / e.length;
    const rmse = (e: number[]) => Math.sqrt(e.reduce((s, x) => s + x * x, 0) / e.length);
    for (const [subject, e] of [
      [SHARP, errors((row) => row.answers[SHARP]!)],
      [BLUNT, errors((row) => row.answers[BLUNT]!)],
      ['ensemble', errors((row) => row.fused)],
    ] as const) {
      const entry = snapshot.entries.find((x) => x.subject === subject);
      expect(entry).toMatchObject({ labelled: rows.length, accuracy: null, logLoss: null });
      expect(entry?.mae).toBeCloseTo(mae(e), 9);
      expect(entry?.rmse).toBeCloseTo(rmse(e), 9);
      expect(entry?.latencyP50Ms).toBeCloseTo(subject === 'ensemble' ? 30 : 20, 0);
    }
    const weights = await new LearnedWeights(h.redis(), h.keys, MODELS).current();
    expect(weights[SHARP]).toBeGreaterThan(weights[BLUNT]!);
    expect(await new LearnedWeights(h.redis(), h.keys, MODELS).bestModel('rmse')).toBe(SHARP);
  });
});
