import type { Message } from 'kafkajs';
import { afterEach, describe, expect, it } from 'vitest';
import { BREAKER_DEFAULTS } from '../../services/core/ensemble-config.js';
import { createRng } from '../../services/ml/random.js';
import { codecs } from '../../services/shared/codec.js';
import { deadlineRecord } from '../../services/shared/control-records.js';
import type { DeadLetter, FeatureEvent, FusedPrediction, Prediction } from '../../services/shared/records.js';
import { HEADERS } from '../../services/shared/topics.js';
import type { ModelAnswer, ModelRunner } from '../../services/worker/model-runner.js';
import { untilConsumed } from '../support/consumed.js';
import { classificationConfig, createTestTopics, eventually, produce, tail, TestPipeline, testKafka } from '../support/pipeline.js';

/**
 * A seeded fuzz run on real Kafka and Redis: every kind of bad message of issue 11, mixed with valid
 * requests, onto `features` and `predictions`, through three workers and an aggregator. Every bad
 * message must be dead-lettered with its reason or get its documented outcome, every valid request
 * must be fused exactly once, no service may give up its consumer and no partition may be left behind.
 */
const SEED = Number(process.env.ES_FUZZ_SEED ?? 42);
const MODELS = ['m1', 'm2', 'm3'];
const CLASSES = 3;
const VALID = 1000;
const PER_FEATURE_KIND = 60;
const PER_PREDICTION_KIND = 80;
const MAX_BYTES = 4096;
const STATE_TTL_MS = 600_000;
const VERSION = 'fuzz-1';
/** Markers in a model's slice of the features that make the fuzz model misbehave. */
const SHORT_OUTPUT = 0.111;
const NAN_OUTPUT = 0.222;

/** A model that answers its own slice of the features, and misbehaves on the markers. */
class FuzzRunner implements ModelRunner {
  readonly modelVersion = VERSION;
  readonly featureCount = MODELS.length * CLASSES;
  readonly classCount = CLASSES;
  constructor(
    readonly modelId: string,
    private readonly index: number,
  ) {}

  predict(features: readonly number[]): Promise<ModelAnswer> {
    const slice = features.slice(this.index * CLASSES, (this.index + 1) * CLASSES);
    if (slice[0] === SHORT_OUTPUT) return Promise.resolve({ probabilities: slice.slice(0, 2) });
    if (slice[0] === NAN_OUTPUT) return Promise.resolve({ probabilities: [Number.NaN, 0.5, 0.5] });
    return Promise.resolve({ probabilities: slice });
  }
}

/** Zig-zag varint, as Avro writes longs. */
function varint(n: bigint): Buffer {
  let z = n >= 0n ? n << 1n : (-n << 1n) - 1n;
  const bytes: number[] = [];
  do {
    let b = Number(z & 0x7fn);
    z >>= 7n;
    if (z > 0n) b |= 0x80;
    bytes.push(b);
  } while (z > 0n);
  return Buffer.from(bytes);
}
const avroString = (s: string) => Buffer.concat([varint(BigInt(Buffer.byteLength(s))), Buffer.from(s)]);

type Outcome =
  /** Dead-lettered with this reason by each worker (features) or by the aggregator (predictions). */
  | { deadLetter: string }
  /** Fused exactly once (valid requests, and requests whose model misbehaved). */
  | { fused: 'once'; modelError?: string }
  /** Answered by every worker; what the aggregator makes of it is its own business (printed). */
  | { answered: true }
  /** A result or a dead letter, exactly one of them. */
  | { resultOrDeadLetter: true };

interface Sent {
  kind: string;
  topic: 'features' | 'predictions';
  /** The request id the outcome is looked up by (the message key, or the request it targets). */
  id: string | null;
  message: Message;
}

describe('fuzz: bad input of every kind mixed with valid requests', () => {
  let pipeline: TestPipeline | undefined;
  afterEach(async () => {
    await pipeline?.stop();
    pipeline = undefined;
  });

  it(`every bad message gets its dead letter or documented outcome, every valid request one result (seed ${SEED})`, async () => {
    const random = createRng(SEED);
    const kafka = testKafka();
    const topics = await createTestTopics(kafka, 3);
    pipeline = new TestPipeline(kafka, topics);
    const exits: string[] = [];
    const workers = [];
    for (const [i, id] of MODELS.entries()) {
      workers.push(
        await pipeline.startWorker(new FuzzRunner(id, i), { limits: { maxMessageBytes: MAX_BYTES }, commitIntervalMs: 200, onFatal: (r) => exits.push(r) }),
      );
    }
    // Breakers kept shut: which model's breaker the unknown requests may open is not this test's question.
    const config = classificationConfig(MODELS, {
      // Long enough for the whole burst to be answered on a loaded machine: a valid request closes
      // when all three models answered, and only the requests meant to miss a model wait for it.
      deadlineMs: 5000,
      maxMessageBytes: MAX_BYTES,
      stateTtlMs: STATE_TTL_MS,
      breaker: { ...BREAKER_DEFAULTS, volumeThreshold: 1_000_000 },
    });
    const aggregator = await pipeline.startAggregatorWith(config, { onFatal: (r) => exits.push(r) });
    const fused = await tail<FusedPrediction>(kafka, topics.fused, (v, h) => codecs.fusedPrediction.decode(v, h as never));
    const dead = await tail<DeadLetter>(kafka, topics.deadLetters, (v, h) => codecs.deadLetter.decode(v, h as never));
    const answers = await tail<Prediction | null>(kafka, topics.predictions, (v, h) => {
      try {
        return codecs.prediction.decode(v, h as never);
      } catch {
        return null;
      }
    });
    // Requests are created now that the pipeline is up: their deadlines run from here.
    const now = Date.now();

    const distribution = () => {
      const w = Array.from({ length: CLASSES }, () => 0.05 + random());
      const sum = w.reduce((a, b) => a + b, 0);
      return w.map((x) => x / sum);
    };
    const validFeatures = () => MODELS.flatMap(() => distribution());
    const event = (requestId: string, overrides: Partial<FeatureEvent> = {}): FeatureEvent => ({
      requestId,
      createdAtMs: now,
      features: validFeatures(),
      deadlineMs: null,
      ...overrides,
    });
    const featureMsg = (e: FeatureEvent, headers = codecs.featureEvent.headers, key: string | null = e.requestId): Message => ({
      key,
      value: codecs.featureEvent.encode(e),
      headers,
    });
    const prediction = (requestId: string, overrides: Partial<Prediction> = {}): Prediction => ({
      requestId,
      modelId: MODELS[Math.floor(random() * MODELS.length)] as string,
      modelVersion: 'v1',
      status: 'OK',
      probabilities: distribution(),
      value: null,
      error: null,
      requestCreatedAtMs: now,
      deadlineMs: null,
      receivedAtMs: now,
      inferenceMicros: 5,
      ...overrides,
    });
    const predictionMsg = (p: Prediction, headers = codecs.prediction.headers, key: string | null = p.requestId): Message => ({
      key,
      value: codecs.prediction.encode(p),
      headers,
    });
    const truncated = (bytes: Buffer) => bytes.subarray(0, 1 + Math.floor(random() * (bytes.length - 1)));
    const huge = () => varint(2n ** 31n + BigInt(Math.floor(random() * 2 ** 40)));
    const otherHeaders = (headers: Readonly<Record<string, string>>, change: 'name' | 'version'): Record<string, string> =>
      change === 'name' ? { 'es.schem': headers[HEADERS.schema] as string, [HEADERS.schemaVersion]: '1' } : { ...headers, [HEADERS.schemaVersion]: '2' };

    const validIds = Array.from({ length: VALID }, (_, i) => `valid-${i}`);
    const expected = new Map<string, Outcome>();
    const sent: Sent[] = validIds.map((id) => ({ kind: 'valid', topic: 'features', id, message: featureMsg(event(id)) }));
    expected.set('valid', { fused: 'once' });
    const slices = (first: number[]) => [...first, ...distribution(), ...distribution()];

    const featureKinds: Record<string, [Outcome, (id: string) => Message]> = {
      oversized: [{ deadLetter: 'OVERSIZED' }, (id) => featureMsg(event(id, { features: Array.from({ length: 600 }, () => random()) }))],
      'huge-length-avro': [
        { deadLetter: 'UNDECODABLE' },
        (id) => ({ key: id, value: Buffer.concat([avroString(id), varint(BigInt(now)), huge()]), headers: codecs.featureEvent.headers }),
      ],
      'truncated-avro': [
        { deadLetter: 'UNDECODABLE' },
        (id) => ({ key: id, value: truncated(codecs.featureEvent.encode(event(id))), headers: codecs.featureEvent.headers }),
      ],
      'wrong-schema': [{ deadLetter: 'SCHEMA_MISMATCH' }, (id) => predictionMsg(prediction(id))],
      'wrong-header-name': [{ deadLetter: 'SCHEMA_MISMATCH' }, (id) => featureMsg(event(id), otherHeaders(codecs.featureEvent.headers, 'name'))],
      'wrong-header-version': [{ deadLetter: 'SCHEMA_MISMATCH' }, (id) => featureMsg(event(id), otherHeaders(codecs.featureEvent.headers, 'version'))],
      'empty-value': [{ deadLetter: 'UNDECODABLE' }, (id) => ({ key: id, value: Buffer.alloc(0), headers: codecs.featureEvent.headers })],
      'missing-key': [{ deadLetter: 'MISSING_KEY' }, (id) => featureMsg(event(id), codecs.featureEvent.headers, null)],
      'key-mismatch': [{ deadLetter: 'KEY_MISMATCH' }, (id) => featureMsg(event(`not-${id}`), codecs.featureEvent.headers, id)],
      'nan-features': [{ deadLetter: 'INVALID_VALUE' }, (id) => featureMsg(event(id, { features: slices([Number.NaN, 0.5, 0.5]) }))],
      'inf-features': [{ deadLetter: 'INVALID_VALUE' }, (id) => featureMsg(event(id, { features: slices([Number.POSITIVE_INFINITY, 0, 0]) }))],
      'wrong-feature-count': [{ deadLetter: 'WRONG_FEATURE_COUNT' }, (id) => featureMsg(event(id, { features: validFeatures().slice(1) }))],
      'zero-createdAtMs': [{ deadLetter: 'INVALID_TIMESTAMP' }, (id) => featureMsg(event(id, { createdAtMs: 0 }))],
      'negative-createdAtMs': [{ deadLetter: 'INVALID_TIMESTAMP' }, (id) => featureMsg(event(id, { createdAtMs: -1 - Math.floor(random() * 1e12) }))],
      'future-createdAtMs': [{ deadLetter: 'INVALID_TIMESTAMP' }, (id) => featureMsg(event(id, { createdAtMs: now + 600_000 }))],
      'deadline-zero': [{ deadLetter: 'INVALID_DEADLINE' }, (id) => featureMsg(event(id, { deadlineMs: 0 }))],
      'deadline-negative': [{ deadLetter: 'INVALID_DEADLINE' }, (id) => featureMsg(event(id, { deadlineMs: -5 }))],
      'deadline-too-long': [{ deadLetter: 'INVALID_DEADLINE' }, (id) => featureMsg(event(id, { deadlineMs: 2_000_000_000 }))],
      'stale-createdAtMs': [{ answered: true }, (id) => featureMsg(event(id, { createdAtMs: now - 2 * STATE_TTL_MS }))],
      'model-output-not-summing': [{ fused: 'once', modelError: 'm1' }, (id) => featureMsg(event(id, { features: slices([0.5, 0.5, 0.5]) }))],
      'model-output-negative': [{ fused: 'once', modelError: 'm1' }, (id) => featureMsg(event(id, { features: slices([-0.5, 1, 0.5]) }))],
      'model-output-nan': [{ fused: 'once', modelError: 'm1' }, (id) => featureMsg(event(id, { features: slices([NAN_OUTPUT, 0.4, 0.378]) }))],
      'model-output-wrong-length': [{ fused: 'once', modelError: 'm1' }, (id) => featureMsg(event(id, { features: slices([SHORT_OUTPUT, 0.5, 0.389]) }))],
      duplicate: [{ fused: 'once' }, (id) => featureMsg(event(id))],
    };
    for (const [name, [outcome, build]] of Object.entries(featureKinds)) {
      const kind = `features: ${name}`;
      expected.set(kind, outcome);
      for (let i = 0; i < PER_FEATURE_KIND; i++) {
        const id = `f-${name}-${i}`;
        const message = build(id);
        sent.push({ kind, topic: 'features', id: message.key === null ? null : id, message });
        if (name === 'duplicate') sent.push({ kind, topic: 'features', id, message: { ...message } });
      }
    }

    const targets = [...validIds];
    const target = () => targets.splice(Math.floor(random() * targets.length), 1)[0] as string;
    const wrongSecret = Buffer.from('not the aggregators secret at all');
    const predictionKinds: Record<string, [Outcome, (id: string) => { message: Message; id?: string }]> = {
      oversized: [
        { deadLetter: 'OVERSIZED' },
        (id) => ({ message: predictionMsg(prediction(id, { status: 'ERROR', probabilities: null, error: 'x'.repeat(MAX_BYTES + 100) })) }),
      ],
      'huge-length-avro': [
        { deadLetter: 'UNDECODABLE' },
        (id) => ({ message: { key: id, value: Buffer.concat([avroString(id), huge()]), headers: codecs.prediction.headers } }),
      ],
      'truncated-avro': [
        { deadLetter: 'UNDECODABLE' },
        (id) => ({ message: { key: id, value: truncated(codecs.prediction.encode(prediction(id))), headers: codecs.prediction.headers } }),
      ],
      'wrong-schema': [{ deadLetter: 'SCHEMA_MISMATCH' }, (id) => ({ message: featureMsg(event(id)) })],
      'wrong-header-name': [
        { deadLetter: 'SCHEMA_MISMATCH' },
        (id) => ({ message: predictionMsg(prediction(id), otherHeaders(codecs.prediction.headers, 'name')) }),
      ],
      'wrong-header-version': [
        { deadLetter: 'SCHEMA_MISMATCH' },
        (id) => ({ message: predictionMsg(prediction(id), otherHeaders(codecs.prediction.headers, 'version')) }),
      ],
      'empty-value': [{ deadLetter: 'UNDECODABLE' }, (id) => ({ message: { key: id, value: Buffer.alloc(0), headers: codecs.prediction.headers } })],
      'missing-key': [{ deadLetter: 'MISSING_KEY' }, (id) => ({ message: predictionMsg(prediction(id), codecs.prediction.headers, null) })],
      'key-mismatch': [{ deadLetter: 'KEY_MISMATCH' }, (id) => ({ message: predictionMsg(prediction(`not-${id}`), codecs.prediction.headers, id) })],
      'negative-probabilities': [
        { deadLetter: 'INVALID_PROBABILITIES' },
        (id) => ({ message: predictionMsg(prediction(id, { probabilities: [-0.2, 0.7, 0.5] })) }),
      ],
      'probabilities-not-summing': [
        { deadLetter: 'INVALID_PROBABILITIES' },
        (id) => ({ message: predictionMsg(prediction(id, { probabilities: [0.2, 0.2, 0.2] })) }),
      ],
      'nan-probabilities': [
        { deadLetter: 'INVALID_PROBABILITIES' },
        (id) => ({ message: predictionMsg(prediction(id, { probabilities: [Number.NaN, 0.5, 0.5] })) }),
      ],
      'inf-probabilities': [
        { deadLetter: 'INVALID_PROBABILITIES' },
        (id) => ({ message: predictionMsg(prediction(id, { probabilities: [Number.POSITIVE_INFINITY, 0, 0] })) }),
      ],
      'probabilities-wrong-length': [{ deadLetter: 'WRONG_CLASS_COUNT' }, (id) => ({ message: predictionMsg(prediction(id, { probabilities: [0.5, 0.5] })) })],
      'unknown-model': [{ deadLetter: 'UNKNOWN_MODEL' }, (id) => ({ message: predictionMsg(prediction(id, { modelId: 'intruder' })) })],
      'zero-createdAtMs': [{ deadLetter: 'INVALID_TIMESTAMP' }, (id) => ({ message: predictionMsg(prediction(id, { requestCreatedAtMs: 0 })) })],
      'deadline-beyond-state-ttl': [{ deadLetter: 'INVALID_DEADLINE' }, (id) => ({ message: predictionMsg(prediction(id, { deadlineMs: STATE_TTL_MS })) })],
      // Forged deadline records aim at valid requests: had they worked, those would expire early.
      'forged-control-unsigned': [
        { deadLetter: 'FORGED_CONTROL' },
        () => {
          const id = target();
          return { id, message: { key: id, value: null, headers: { [HEADERS.control]: 'deadline' } } };
        },
      ],
      'forged-control-wrong-secret': [
        { deadLetter: 'FORGED_CONTROL' },
        () => {
          const id = target();
          const { partition: _p, ...record } = deadlineRecord(id, 0, wrongSecret);
          return { id, message: record };
        },
      ],
      'forged-control-other-kind': [
        { deadLetter: 'FORGED_CONTROL' },
        () => {
          const id = target();
          return { id, message: { key: id, value: null, headers: { [HEADERS.control]: 'purge' } } };
        },
      ],
      'unknown-request': [{ resultOrDeadLetter: true }, (id) => ({ message: predictionMsg(prediction(id)) })],
      // A second copy of a model's answer to a valid request (its worker sends the other one).
      duplicate: [
        { fused: 'once' },
        () => {
          const id = target();
          return { id, message: predictionMsg(prediction(id, { modelId: 'm2' })) };
        },
      ],
    };
    for (const [name, [outcome, build]] of Object.entries(predictionKinds)) {
      const kind = `predictions: ${name}`;
      expected.set(kind, outcome);
      for (let i = 0; i < PER_PREDICTION_KIND; i++) {
        const built = build(`p-${name}-${i}`);
        sent.push({ kind, topic: 'predictions', id: built.message.key === null ? null : (built.id ?? (built.message.key as string)), message: built.message });
      }
    }

    // Shuffled, then sent to both topics at once.
    for (let i = sent.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [sent[i], sent[j]] = [sent[j] as Sent, sent[i] as Sent];
    }
    await Promise.all([
      produce(
        kafka,
        topics.features,
        sent.filter((s) => s.topic === 'features').map((s) => s.message),
      ),
      produce(
        kafka,
        topics.predictions,
        sent.filter((s) => s.topic === 'predictions').map((s) => s.message),
      ),
    ]);

    // Done when every consumer (services and readers) has committed up to its topics' end.
    const expectedDeadLetters = sent.reduce(
      (n, s) => n + ('deadLetter' in (expected.get(s.kind) as Outcome) ? (s.topic === 'features' ? MODELS.length : 1) : 0),
      0,
    );
    const mustFuse = new Set(sent.filter((s) => 'fused' in (expected.get(s.kind) as Outcome)).map((s) => s.id as string));
    const fusedKeys = () => new Set(fused.received.map((f) => f.key));
    await eventually(
      () => dead.received.length >= expectedDeadLetters && [...mustFuse].every((id) => fusedKeys().has(id)),
      'every dead letter and result',
      50_000,
    );
    const ghosts = sent.filter((s) => s.kind === 'predictions: unknown-request').map((s) => s.id as string);
    const settled = (id: string) => fused.received.some((f) => f.key === id) || dead.received.some((d) => d.key === id);
    await eventually(() => ghosts.every(settled), 'an outcome for every prediction of an unknown request', 20_000);
    await untilConsumed(kafka, [
      ...MODELS.map((m) => ({ groupId: `${topics.features}-${m}`, topic: topics.features })),
      { groupId: `${topics.predictions}-aggregator`, topic: topics.predictions },
      ...[fused, dead, answers].map((t) => ({ groupId: t.groupId, topic: t.topic })),
    ]);

    // The per-kind table: sent, dead-lettered by reason, answered by workers, fused.
    const kindOf = new Map<string, string>();
    // Duplicates and forged records aim at valid requests: those ids stay the valid requests'.
    for (const s of sent) if (s.id !== null && (!kindOf.has(s.id) || s.kind === 'valid')) kindOf.set(s.id, s.kind);
    const forgedTargets = new Map(sent.filter((s) => s.kind.includes('forged-control')).map((s) => [s.id as string, s.kind]));
    const rows = new Map<string, { sent: number; dead: Map<string, number>; answered: number; fused: number }>();
    const row = (kind: string) => {
      let r = rows.get(kind);
      if (r === undefined) rows.set(kind, (r = { sent: 0, dead: new Map(), answered: 0, fused: 0 }));
      return r;
    };
    for (const s of sent) row(s.kind).sent++;
    for (const { key, value } of dead.received) {
      let kind = value.reasonCode === 'FORGED_CONTROL' ? forgedTargets.get(key) : kindOf.get(key);
      if (key === '' && value.reasonCode === 'MISSING_KEY') kind = value.sourceTopic === topics.features ? 'features: missing-key' : 'predictions: missing-key';
      const r = row(kind ?? `unexpected (${value.sourceTopic})`);
      r.dead.set(value.reasonCode, (r.dead.get(value.reasonCode) ?? 0) + 1);
    }
    for (const { key, value } of answers.received) if (value?.modelVersion === VERSION) row(kindOf.get(key) ?? 'unexpected').answered++;
    for (const { key } of fused.received) row(kindOf.get(key) ?? 'unexpected').fused++;
    const order = (kind: string) => (kind === 'valid' ? 0 : kind.startsWith('features') ? 1 : 2);
    const lines = [...rows]
      .sort(([a], [b]) => order(a) - order(b) || a.localeCompare(b))
      .map(([kind, r]) => {
        const reasons = [...r.dead].map(([code, n]) => `${code} ${n}`).join(', ') || '-';
        return `| ${kind} | ${r.sent} | ${reasons} | ${r.answered} | ${r.fused} |`;
      });
    console.log(
      [
        `fuzz run, seed ${SEED}: ${sent.length} messages (${sent.filter((s) => s.kind !== 'valid').length} bad, ${VALID} valid requests)`,
        'features: dead letters count once per worker (3 workers); answered = predictions by the workers; duplicates and forged records aim at valid requests, whose results count under valid',
        '| kind | sent | dead-lettered (reason) | answered | fused |',
        '|---|---|---|---|---|',
        ...lines,
        `aggregator: fused ${aggregator.stats.fused} (complete ${aggregator.stats.complete}, partial ${aggregator.stats.partial}, insufficient ${aggregator.stats.insufficient}), duplicates ${aggregator.stats.duplicates}, late ${JSON.stringify(aggregator.stats.late)}, dead letters ${aggregator.stats.deadLetters}`,
        ...workers.map(
          (w, i) =>
            `worker m${i + 1}: predictions ${w.stats.predictions}, errors ${w.stats.errors} (invalid outputs ${w.stats.invalidOutputs}), dead letters ${JSON.stringify(w.stats.deadLettersByReason)}`,
        ),
      ].join('\n'),
    );

    expect(exits).toEqual([]);
    expect(rows.has('unexpected') || [...rows.keys()].some((k) => k.startsWith('unexpected'))).toBe(false);
    const fusedCount = new Map<string, FusedPrediction[]>();
    for (const { key, value } of fused.received) fusedCount.set(key, [...(fusedCount.get(key) ?? []), value]);
    for (const [kind, outcome] of expected) {
      const r = row(kind);
      const ids = sent.filter((s) => s.kind === kind).map((s) => s.id);
      if ('deadLetter' in outcome) {
        expect([kind, [...r.dead]]).toEqual([kind, [[outcome.deadLetter, r.sent * (kind.startsWith('features') ? MODELS.length : 1)]]]);
        if (!kind.includes('forged-control')) expect([kind, r.fused]).toEqual([kind, 0]);
      } else if ('fused' in outcome) {
        for (const id of new Set(ids)) expect([kind, id, fusedCount.get(id as string)?.length]).toEqual([kind, id, 1]);
        expect([kind, r.dead.size]).toEqual([kind, 0]);
        if (outcome.modelError !== undefined) {
          for (const id of ids) {
            const missing = fusedCount.get(id as string)?.[0]?.missing.find((m) => m.modelId === outcome.modelError);
            expect([id, missing?.reason, missing?.detail]).toEqual([id, 'ERROR', expect.stringMatching(/^invalid model output: /)]);
          }
        }
      } else if ('answered' in outcome) {
        expect([kind, r.answered >= r.sent * MODELS.length, r.dead.size]).toEqual([kind, true, 0]);
      } else {
        for (const id of ids) {
          const outcomes = (fusedCount.get(id as string)?.length ?? 0) + dead.received.filter((d) => d.key === id).length;
          expect([kind, id, outcomes]).toEqual([kind, id, 1]);
        }
      }
    }
    expect(row('valid').fused).toBe(VALID);
  });
});
