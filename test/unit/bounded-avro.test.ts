import { describe, expect, it } from 'vitest';
import { scanAvro } from '../../services/shared/bounded-avro.js';
import { codecs } from '../../services/shared/codec.js';
import { invalidMessage } from '../support/errors.js';

/** The message from the report: a FeatureEvent whose features array declares ~4 billion items. */
const HUGE_ARRAY = Buffer.from('146172726179 2d6875676500 80a0d9e61d'.replace(/ /g, ''), 'hex');

/** Zig-zag varints of the largest and smallest longs. */
const MAX_LONG = Buffer.from('feffffffffffffffff01', 'hex');
const MIN_LONG = Buffer.from('ffffffffffffffffff01', 'hex');

const samples = {
  featureEvent: { requestId: 'r-1', createdAtMs: 1_790_000_000_000, features: [1, 2, 3], deadlineMs: 500 },
  prediction: {
    requestId: 'r-1',
    modelId: 'm',
    modelVersion: 'v',
    status: 'ERROR',
    probabilities: [0.5, 0.5],
    value: null,
    error: 'down',
    requestCreatedAtMs: 1,
    deadlineMs: null,
    receivedAtMs: 2,
    inferenceMicros: 3,
  },
  fusedPrediction: {
    requestId: 'r-1',
    status: 'PARTIAL',
    strategy: 's',
    label: 'a',
    probabilities: [1],
    value: null,
    contributors: [{ modelId: 'm', modelVersion: 'v', weight: 1 }],
    missing: [{ modelId: 'n', reason: 'DEADLINE', detail: 'late' }],
    requestCreatedAtMs: 1,
    fusedAtMs: 2,
  },
  label: { requestId: 'r-1', label: 'a', value: null, observedAtMs: 1 },
  deadLetter: {
    sourceTopic: 't',
    sourcePartition: 0,
    sourceOffset: '1',
    key: Buffer.from('k'),
    value: Buffer.from('v'),
    reasonCode: 'X',
    reason: 'y',
    service: 'z',
    failedAtMs: 1,
  },
} as const;

describe('bounded Avro decoding', () => {
  it('refuses the 17-byte message that declares a 4-billion-item array, without allocating it', () => {
    const error = invalidMessage(() => codecs.featureEvent.decode(HUGE_ARRAY, codecs.featureEvent.headers));
    expect(error.code).toBe('UNDECODABLE');
    expect(error.message).toMatch(/items/);
  });

  it('refuses every length and count field set to the largest and the smallest long, in every schema', () => {
    let forged = 0;
    for (const [name, record] of Object.entries(samples)) {
      const codec = codecs[name as keyof typeof samples] as typeof codecs.prediction;
      const bytes = codec.encode(record as never);
      const fields: [number, number][] = [];
      scanAvro(codec.type, bytes, undefined, (start, end) => fields.push([start, end]));
      expect(fields.length).toBeGreaterThanOrEqual(2);
      for (const [start, end] of fields) {
        for (const extreme of [MAX_LONG, MIN_LONG]) {
          const message = Buffer.concat([bytes.subarray(0, start), extreme, bytes.subarray(end)]);
          expect(invalidMessage(() => codec.decode(message, codec.headers)).code).toBe('UNDECODABLE');
          forged++;
        }
      }
    }
    expect(forged).toBeGreaterThan(40);
  });

  it('holds collections and values to the configured ceilings', () => {
    const bytes = codecs.featureEvent.encode({ requestId: 'r', createdAtMs: 1, features: [1, 2, 3, 4], deadlineMs: null });
    expect(codecs.featureEvent.decode(bytes, codecs.featureEvent.headers).features).toHaveLength(4);
    expect(invalidMessage(() => codecs.featureEvent.decode(bytes, codecs.featureEvent.headers, { maxCollectionItems: 3, maxValueBytes: 100 })).message).toMatch(
      /limit of 3/,
    );
    expect(invalidMessage(() => codecs.featureEvent.decode(bytes, codecs.featureEvent.headers, { maxCollectionItems: 10, maxValueBytes: 0 })).message).toMatch(
      /limit of 0/,
    );
  });

  it('refuses enum and union indexes out of range and varints that never end', () => {
    const p = codecs.prediction.encode(samples.prediction as never);
    // requestId "r-1", modelId "m", modelVersion "v": the status enum index is at byte 8.
    const badEnum = Buffer.from(p);
    badEnum[8] = 0x0a;
    expect(invalidMessage(() => codecs.prediction.decode(badEnum, codecs.prediction.headers)).message).toMatch(/enum index 5/);
    const badUnion = Buffer.from(p);
    badUnion[9] = 0x08;
    expect(invalidMessage(() => codecs.prediction.decode(badUnion, codecs.prediction.headers)).message).toMatch(/union branch 4/);
    expect(invalidMessage(() => codecs.label.decode(Buffer.alloc(12, 0xff), codecs.label.headers)).message).toMatch(/varint/);
  });
});
