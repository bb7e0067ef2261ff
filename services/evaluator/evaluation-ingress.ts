import type { KafkaMessage } from 'kafkajs';
import type { AggregatorConfig } from '../core/ensemble-config.js';
import { PredictionIngress } from '../core/prediction-ingress.js';
import { argmax } from '../ml/metrics.js';
import { codecs } from '../shared/codec.js';
import { InvalidMessageError } from '../shared/errors.js';
import { decodeKeyed } from '../shared/ingress.js';
import { header } from '../shared/kafka.js';
import { CONTROL_DEADLINE, HEADERS } from '../shared/topics.js';
import { DDSketch } from './ddsketch.js';
import type { EventEntry } from './evaluator-store.js';
import { ENSEMBLE } from './event-figures.js';
import { encodeAnswer, encodeLabel, UNSCORABLE } from './stored-answers.js';
import type { RollingWindow } from './window.js';
import { EVAL_COUNTER } from '../shared/redis-keys.js';

/**
 * Turns messages of the three evaluated topics into what the evaluator stores: the compact answer,
 * its event bucket and latency-sketch field. Predictions are checked exactly as the aggregator checks
 * them; a message that fails throws InvalidMessageError.
 */
export class EvaluationIngress {
  private readonly predictions: PredictionIngress;
  private readonly sketch = new DDSketch();

  constructor(
    private readonly config: AggregatorConfig,
    private readonly eventWindow: RollingWindow,
  ) {
    this.predictions = new PredictionIngress(config);
  }

  /** Undefined for a deadline control record, which is the aggregator's own. */
  prediction(message: KafkaMessage, nowMs: number): EventEntry | undefined {
    if (header(message.headers, HEADERS.control) === CONTROL_DEADLINE) return undefined;
    const p = this.predictions.accept(message);
    // The broker's timestamp of the prediction: when the answer was out, whatever the model measured.
    const arrivedAtMs = Number(message.timestamp);
    let answer: Buffer = UNSCORABLE;
    const latencyMs = arrivedAtMs - p.requestCreatedAtMs;
    if (p.status === 'OK') {
      answer =
        this.config.task === 'classification'
          ? encodeAnswer(argmax(p.probabilities ?? []), latencyMs, p.probabilities)
          : encodeAnswer(p.value ?? Number.NaN, latencyMs, null);
    }
    return {
      kind: 'prediction',
      requestId: p.requestId,
      modelId: p.modelId,
      answer,
      bucket: this.bucketOf(arrivedAtMs, nowMs),
      sketchField: this.sketchField(p.modelId, latencyMs),
    };
  }

  fused(message: KafkaMessage, nowMs: number): EventEntry {
    const f = decodeKeyed(message, codecs.fusedPrediction, this.config.maxMessageBytes);
    const latencyMs = f.fusedAtMs - f.requestCreatedAtMs;
    let answer: Buffer = UNSCORABLE;
    if (f.status !== 'INSUFFICIENT') {
      if (this.config.task === 'classification') {
        const probabilities = f.probabilities;
        if (probabilities !== null && probabilities.length !== this.config.classes.length) {
          throw new InvalidMessageError(
            'WRONG_CLASS_COUNT',
            `fused result has ${probabilities.length} probabilities for ${this.config.classes.length} classes`,
          );
        }
        // The fused label is the ensemble's decision (hard voting may differ from the probabilities' argmax).
        const labelled = f.label === null ? -1 : this.config.classes.indexOf(f.label);
        if (f.label !== null && labelled < 0) throw new InvalidMessageError('INVALID_VALUE', `fused label "${f.label}" is not a configured class`);
        const predicted = labelled >= 0 ? labelled : probabilities === null ? -1 : argmax(probabilities);
        if (predicted >= 0) answer = encodeAnswer(predicted, latencyMs, probabilities);
      } else if (f.value !== null && Number.isFinite(f.value)) {
        answer = encodeAnswer(f.value, latencyMs, null);
      }
    }
    return {
      kind: 'fused',
      requestId: f.requestId,
      status: f.status,
      answer,
      bucket: this.bucketOf(f.fusedAtMs, nowMs),
      sketchField: this.sketchField(ENSEMBLE, latencyMs),
      missing: f.missing.map((m) => m.modelId),
      lateEligible: f.missing.filter((m) => m.reason === 'DEADLINE' || m.reason === 'CIRCUIT_OPEN').map((m) => m.modelId),
    };
  }

  label(message: KafkaMessage): EventEntry {
    const l = decodeKeyed(message, codecs.label, this.config.maxMessageBytes);
    let target: number;
    if (this.config.task === 'classification') {
      target = l.label === null ? -1 : this.config.classes.indexOf(l.label);
      if (target < 0) throw new InvalidMessageError('INVALID_VALUE', `label ${JSON.stringify(l.label)} is not a configured class`);
    } else {
      if (l.value === null || !Number.isFinite(l.value)) throw new InvalidMessageError('INVALID_VALUE', 'a regression label needs a finite value');
      target = l.value;
    }
    return { kind: 'label', requestId: l.requestId, label: encodeLabel({ observedAtMs: l.observedAtMs, target }) };
  }

  private bucketOf(eventAtMs: number, nowMs: number): number | null {
    return this.eventWindow.admits(eventAtMs, nowMs) ? this.eventWindow.bucketOf(eventAtMs) : null;
  }

  private sketchField(subject: string, latencyMs: number): string {
    return `${EVAL_COUNTER.latency}${subject}:${this.sketch.bucketKey(latencyMs)}`;
  }
}
