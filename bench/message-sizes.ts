import { codecs } from '../services/shared/codec.js';

/** Avro value sizes of the records the pipeline moves, bytes. */
export interface MessageBytes {
  featureEvent: number;
  prediction: number;
  fused: number;
}

/** Sizes of typical letter-sized records (16 features, `classes` probabilities, 3 contributors). */
export function messageSizes(classes: number): MessageBytes {
  const probabilities = Array.from({ length: classes }, () => 1 / classes);
  const now = Date.now();
  const requestId = 'bench-lq2x1c-synthetic-saturation-1-12345';
  const featureEvent = codecs.featureEvent.encode({
    requestId,
    createdAtMs: now,
    features: Array.from({ length: 16 }, (_, i) => i + 0.5),
    deadlineMs: null,
  }).length;
  const prediction = codecs.prediction.encode({
    requestId,
    modelId: 'letter-random-forest',
    modelVersion: 'e6547c49e3be',
    status: 'OK',
    probabilities,
    value: null,
    error: null,
    requestCreatedAtMs: now,
    deadlineMs: null,
    receivedAtMs: now,
    inferenceMicros: 120,
  }).length;
  const fused = codecs.fusedPrediction.encode({
    requestId,
    status: 'COMPLETE',
    strategy: 'soft-voting',
    label: 'A',
    probabilities,
    value: null,
    contributors: ['letter-knn', 'letter-random-forest', 'letter-logistic-regression'].map((modelId) => ({
      modelId,
      modelVersion: 'e6547c49e3be',
      weight: 1 / 3,
    })),
    missing: [],
    requestCreatedAtMs: now,
    fusedAtMs: now,
  }).length;
  return { featureEvent, prediction, fused };
}
