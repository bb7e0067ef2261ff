import type { KafkaMessage } from 'kafkajs';
import { codecs } from '../shared/codec.js';
import { InvalidMessageError } from '../shared/errors.js';
import { decodeKeyed } from '../shared/ingress.js';
import type { Prediction } from '../shared/records.js';
import type { AggregatorConfig } from './ensemble-config.js';
import { FusionError } from './fusion/index.js';
import { checkedProbabilities, checkedValue } from './fusion/validate.js';

/**
 * Decodes and checks a prediction message before it may join a request. Everything that could
 * later break fusion is caught here, so a bad message goes to the dead-letter topic and no good
 * request ever fails because of it.
 */
export class PredictionIngress {
  private readonly models: ReadonlySet<string>;

  constructor(private readonly config: AggregatorConfig) {
    this.models = new Set(config.models.map((m) => m.id));
  }

  /** The checked prediction; throws InvalidMessageError with the dead-letter reason. */
  accept(message: KafkaMessage): Prediction {
    const p = decodeKeyed(message, codecs.prediction, this.config.maxMessageBytes);
    if (!this.models.has(p.modelId)) {
      throw new InvalidMessageError('UNKNOWN_MODEL', `model "${p.modelId}" is not in this aggregator's config`);
    }
    if (p.requestCreatedAtMs <= 0) throw new InvalidMessageError('INVALID_TIMESTAMP', `requestCreatedAtMs ${p.requestCreatedAtMs} is not a time`);
    // Join state lives stateTtlMs: a deadline at or past it could never be met, nor its answers recognised.
    if (p.deadlineMs !== null && (p.deadlineMs <= 0 || p.deadlineMs >= this.config.stateTtlMs)) {
      throw new InvalidMessageError('INVALID_DEADLINE', `deadlineMs ${p.deadlineMs} is not between 1 and stateTtlMs (${this.config.stateTtlMs})`);
    }
    if (p.status !== 'OK') return p;
    try {
      if (this.config.task === 'classification') {
        const n = p.probabilities?.length ?? 0;
        if (n !== this.config.classes.length) {
          throw new InvalidMessageError('WRONG_CLASS_COUNT', `model "${p.modelId}" sent ${n} probabilities for ${this.config.classes.length} classes`);
        }
        checkedProbabilities({ modelId: p.modelId, probabilities: p.probabilities ?? [] }, n);
      } else {
        checkedValue({ modelId: p.modelId, value: p.value ?? Number.NaN });
      }
    } catch (error) {
      if (error instanceof FusionError) {
        throw new InvalidMessageError(error.code === 'INVALID_VALUE' ? 'INVALID_VALUE' : 'INVALID_PROBABILITIES', error.message, error);
      }
      throw error;
    }
    return p;
  }
}
