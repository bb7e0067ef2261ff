import { describe, expect, it } from 'vitest';
import { codecs, SCHEMA_VERSION } from '../../services/shared/codec.js';
import type { FeatureEvent, FusedPrediction, Prediction } from '../../services/shared/records.js';
import { HEADERS } from '../../services/shared/topics.js';
import { invalidMessage } from '../support/errors.js';

const prediction: Prediction = {
  requestId: 'r-1',
  modelId: 'letter-knn',
  modelVersion: 'ef26311e27c0',
  status: 'OK',
  probabilities: [0.1, 0.7, 0.2],
  value: null,
  error: null,
  requestCreatedAtMs: 1_790_000_000_123,
  deadlineMs: 1500,
  receivedAtMs: 1_790_000_000_130,
  inferenceMicros: 412,
};

describe('Avro codecs', () => {
  it('round-trip every record type exactly, with the headers that name the schema', () => {
    const feature: FeatureEvent = { requestId: 'r-1', createdAtMs: 1_790_000_000_000, features: [0, 1.5, -2, 1e-300], deadlineMs: null };
    const fused: FusedPrediction = {
      requestId: 'r-1',
      status: 'PARTIAL',
      strategy: 'soft-voting',
      label: 'B',
      probabilities: [0.2, 0.5, 0.3],
      value: null,
      contributors: [{ modelId: 'm1', modelVersion: 'v1', weight: 0.5 }],
      missing: [{ modelId: 'm2', reason: 'DEADLINE', detail: null }],
      requestCreatedAtMs: 1,
      fusedAtMs: 2,
      classes: ['A', 'B', 'C'],
    };
    const cases = [
      [codecs.featureEvent, feature],
      [codecs.prediction, prediction],
      [codecs.fusedPrediction, fused],
      [codecs.label, { requestId: 'r-1', label: 'B', value: null, observedAtMs: 3 }],
      [
        codecs.deadLetter,
        {
          sourceTopic: 't',
          sourcePartition: 2,
          sourceOffset: '9007199254740993',
          key: Buffer.from('k'),
          value: Buffer.from([0, 255]),
          reasonCode: 'UNDECODABLE',
          reason: 'x',
          service: 'aggregator',
          failedAtMs: 4,
        },
      ],
    ] as const;
    for (const [codec, record] of cases) {
      const bytes = (codec as typeof codecs.prediction).encode(record as never);
      const headers = { ...codec.headers };
      expect(headers[HEADERS.schemaVersion]).toBe(SCHEMA_VERSION);
      expect(headers[HEADERS.schema]).toMatch(/^io\.ensemblestream\.v1\./);
      expect((codec as typeof codecs.prediction).decode(bytes, headers)).toEqual(record);
    }
  });

  it('is compact: a 26-class prediction fits in a few hundred bytes', () => {
    const bytes = codecs.prediction.encode({ ...prediction, probabilities: Array.from({ length: 26 }, () => 1 / 26) });
    expect(bytes.length).toBeLessThan(300);
  });

  it('reports a message written with another schema as a schema mismatch', () => {
    const bytes = codecs.prediction.encode(prediction);
    expect(invalidMessage(() => codecs.prediction.decode(bytes, codecs.featureEvent.headers)).code).toBe('SCHEMA_MISMATCH');
    expect(invalidMessage(() => codecs.prediction.decode(bytes, {})).code).toBe('SCHEMA_MISMATCH');
    expect(invalidMessage(() => codecs.prediction.decode(bytes, { ...codecs.prediction.headers, [HEADERS.schemaVersion]: '2' })).message).toContain('v2');
  });

  it('reports garbage, truncated and empty values as undecodable', () => {
    const bytes = codecs.prediction.encode(prediction);
    for (const bad of [Buffer.from('{"json":true}'), bytes.subarray(0, bytes.length - 3), Buffer.concat([bytes, Buffer.from([1, 2])]), Buffer.alloc(0), null]) {
      expect(invalidMessage(() => codecs.prediction.decode(bad, codecs.prediction.headers)).code).toBe('UNDECODABLE');
    }
  });

  it('refuses to encode a record that does not fit its schema', () => {
    expect(() => codecs.prediction.encode({ ...prediction, status: 'MAYBE' as never })).toThrow();
  });
});
