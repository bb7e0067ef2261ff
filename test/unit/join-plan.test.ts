import type { KafkaMessage } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { validateAggregatorConfig } from '../../services/core/ensemble-config.js';
import { staticFuser } from '../../services/aggregator/fuser-factory.js';
import { admit, deadLetters, settle } from '../../services/aggregator/join-plan.js';
import type { JoinOutcome } from '../../services/aggregator/join-store.js';
import { PredictionIngress } from '../../services/core/prediction-ingress.js';
import { RequestFusion } from '../../services/aggregator/request-fusion.js';
import { codecs } from '../../services/shared/codec.js';
import { deadlineRecord } from '../../services/shared/control-records.js';
import { createLogger } from '../../services/shared/log.js';
import type { Prediction } from '../../services/shared/records.js';

const config = validateAggregatorConfig({
  task: 'classification',
  classes: ['x', 'y'],
  strategy: 'soft-voting',
  models: [{ id: 'a' }, { id: 'b' }, { id: 'c' }],
  deadlineMs: 1000,
  quorum: 2,
});
const fusion = new RequestFusion(config, staticFuser(config));
const ingress = new PredictionIngress(config);
const SECRET = Buffer.from('a test secret of enough bytes');
const quiet = createLogger('test', 'silent');

function prediction(requestId: string, modelId: string, offset: number, over: Partial<Prediction> = {}): KafkaMessage {
  const p: Prediction = {
    requestId,
    modelId,
    modelVersion: 'v1',
    status: 'OK',
    probabilities: [0.25, 0.75],
    value: null,
    error: null,
    requestCreatedAtMs: 5000,
    deadlineMs: null,
    receivedAtMs: 5001,
    inferenceMicros: 1,
    ...over,
  };
  return {
    key: Buffer.from(requestId),
    value: codecs.prediction.encode(p),
    headers: codecs.prediction.headers,
    offset: String(offset),
    timestamp: '0',
    attributes: 0,
  } as KafkaMessage;
}

function deadline(requestId: string, offset: number, secret = SECRET): KafkaMessage {
  const record = deadlineRecord(requestId, 0, secret);
  const headers = Object.fromEntries(Object.entries(record.headers ?? {}).map(([k, v]) => [k, Buffer.from(String(v))]));
  return { key: Buffer.from(requestId), value: null, headers, offset: String(offset), timestamp: '0', attributes: 0 } as KafkaMessage;
}

function fuse(why: 'all' | 'deadline', awaited: string[], stored: KafkaMessage[], fusedAtMs = 7000): JoinOutcome {
  return {
    kind: 'fuse',
    why,
    awaited: new Set(awaited),
    probes: new Set(),
    fusedAtMs,
    predictions: new Map(stored.map((m) => [codecs.prediction.decode(m.value).modelId, m.value as Buffer])),
  };
}

describe('join planner', () => {
  it('turns messages into join entries, deadline records and rejections', () => {
    const bad = { ...prediction('r2', 'zz', 3) };
    const forged = deadline('r1', 4, Buffer.from('another secret of enough bytes'));
    const admitted = admit(
      {
        topic: 'p',
        partition: 0,
        messages: [prediction('r1', 'a', 1, { status: 'ERROR', probabilities: null, error: 'boom' }), deadline('r1', 2), bad, forged],
      },
      ingress,
      config.deadlineMs,
      SECRET,
    );
    expect(admitted.entries).toMatchObject([
      { kind: 'prediction', requestId: 'r1', modelId: 'a', offset: '1', requestCreatedAtMs: 5000, deadlineAtMs: 6000, ok: false },
      { kind: 'deadline', requestId: 'r1', offset: '2' },
    ]);
    expect(admitted.rejected.map((r) => r.error.code)).toEqual(['UNKNOWN_MODEL', 'FORGED_CONTROL']);
    const letters = deadLetters({ topic: 'p', partition: 0 }, admitted.rejected, 'aggregator', 1, quiet);
    expect(codecs.deadLetter.decode(letters[0]?.value as Buffer)).toMatchObject({ reasonCode: 'UNKNOWN_MODEL', sourceOffset: '3' });
  });

  it('names every model in a result: not awaited and silent is CIRCUIT_OPEN, awaited and silent is DEADLINE', () => {
    const a = prediction('r1', 'a', 1);
    const b = prediction('r1', 'b', 2);
    const admitted = admit({ topic: 'p', partition: 0, messages: [a, b, deadline('r1', 3)] }, ingress, config.deadlineMs, SECRET);
    const settled = settle(admitted, [{ kind: 'pending' }, { kind: 'pending' }, fuse('deadline', ['a', 'c'], [a, b])], fusion);
    expect(settled.fused).toHaveLength(1);
    const [result] = settled.fused;
    expect(result?.status).toBe('PARTIAL');
    expect(result?.contributors.map((c) => c.modelId)).toEqual(['a', 'b']);
    expect(result?.missing).toEqual([{ modelId: 'c', reason: 'DEADLINE', detail: null }]);
    const open = settle(admitted, [{ kind: 'pending' }, fuse('all', ['a', 'b'], [a, b], 6500), { kind: 'ignored' }], fusion);
    expect(open.fused[0]?.missing).toEqual([{ modelId: 'c', reason: 'CIRCUIT_OPEN', detail: null }]);
    // What the breakers learn: who answered, who was awaited.
    expect(settled.closed[0]).toMatchObject({
      requestCreatedAtMs: 5000,
      awaited: new Set(['a', 'c']),
      answered: new Map([
        ['a', 'OK'],
        ['b', 'OK'],
      ]),
    });
  });

  it('an INSUFFICIENT result still names the models that answered, and the ones that failed', () => {
    const a = prediction('r1', 'a', 1);
    const b = prediction('r1', 'b', 2, { status: 'ERROR', probabilities: null, error: 'model crashed' });
    const admitted = admit({ topic: 'p', partition: 0, messages: [a, b, deadline('r1', 3)] }, ingress, config.deadlineMs, SECRET);
    const [result] = settle(admitted, [{ kind: 'pending' }, { kind: 'pending' }, fuse('deadline', ['a', 'b', 'c'], [a, b])], fusion).fused;
    expect(result?.status).toBe('INSUFFICIENT');
    expect(result?.label).toBeNull();
    expect(result?.contributors).toEqual([{ modelId: 'a', modelVersion: 'v1', weight: 0 }]);
    expect(result?.missing).toEqual([
      { modelId: 'b', reason: 'ERROR', detail: 'model crashed' },
      { modelId: 'c', reason: 'DEADLINE', detail: null },
    ]);
  });

  it('counts late and duplicate answers, and dead-letters answers older than the fused memory', () => {
    const admitted = admit(
      { topic: 'p', partition: 0, messages: [prediction('r1', 'a', 1), prediction('r1', 'b', 2), prediction('old', 'a', 3, { requestCreatedAtMs: 1 })] },
      ingress,
      config.deadlineMs,
      SECRET,
    );
    const settled = settle(admitted, [{ kind: 'late' }, { kind: 'duplicate' }, { kind: 'expired' }], fusion);
    expect(settled).toMatchObject({ fused: [], late: ['a'], duplicates: 1 });
    expect(settled.rejected.map((r) => [r.message.offset, r.error.code])).toEqual([['3', 'EXPIRED']]);
  });
});
