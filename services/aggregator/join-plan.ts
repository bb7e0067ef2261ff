import type { KafkaMessage, Message } from 'kafkajs';
import { codecs } from '../shared/codec.js';
import { deadlineRequestId } from '../shared/control-records.js';
import { type EnsembleError, InvalidMessageError } from '../shared/errors.js';
import { rejectMessage } from '../shared/ingress.js';
import type { Logger } from '../shared/log.js';
import type { FusedPrediction, Prediction } from '../shared/records.js';
import type { JoinEntry, JoinOutcome } from './join-store.js';
import type { ClosedRequest } from './model-health.js';
import type { PredictionIngress } from '../core/prediction-ingress.js';
import type { RequestFusion } from './request-fusion.js';

/**
 * The aggregator's decisions for one batch, as pure functions: which messages join (`admit`), and
 * what the join's outcomes mean (`settle`): fused results, breaker observations, late and duplicate
 * answers, dead letters. The aggregator is the I/O shell around them (Redis, the transaction).
 */
export interface BatchSource {
  topic: string;
  partition: number;
}

export interface SourceBatch extends BatchSource {
  messages: KafkaMessage[];
}

export interface Rejected {
  message: KafkaMessage;
  error: EnsembleError;
}

export interface Admitted {
  entries: JoinEntry[];
  /** The predictions this batch decoded (by request and model), so a closing request is not decoded twice. */
  decoded: Map<string, { bytes: Buffer; prediction: Prediction }>;
  rejected: Rejected[];
}

/** `controlSecret` authenticates deadline records (control-records.ts); a forged one is rejected. */
export function admit(batch: SourceBatch, ingress: PredictionIngress, deadlineMs: number, controlSecret: Buffer): Admitted {
  const entries: JoinEntry[] = [];
  const decoded = new Map<string, { bytes: Buffer; prediction: Prediction }>();
  const rejected: Rejected[] = [];
  for (const m of batch.messages) {
    try {
      const expires = deadlineRequestId(m, batch.partition, controlSecret);
      if (expires !== undefined) {
        entries.push({ kind: 'deadline', requestId: expires, offset: m.offset });
        continue;
      }
      const p = ingress.accept(m);
      decoded.set(`${p.requestId}\n${p.modelId}`, { bytes: m.value as Buffer, prediction: p });
      entries.push({
        kind: 'prediction',
        requestId: p.requestId,
        modelId: p.modelId,
        offset: m.offset,
        requestCreatedAtMs: p.requestCreatedAtMs,
        deadlineAtMs: p.requestCreatedAtMs + (p.deadlineMs ?? deadlineMs),
        ok: p.status === 'OK',
        payload: m.value as Buffer,
      });
    } catch (error) {
      if (!(error instanceof InvalidMessageError)) throw error;
      rejected.push({ message: m, error });
    }
  }
  return { entries, decoded, rejected };
}

export interface Settled {
  fused: FusedPrediction[];
  /** What each fused request says about the models, for the breakers. */
  closed: ClosedRequest[];
  /** Model ids of answers that came after their request was fused. */
  late: string[];
  duplicates: number;
  rejected: Rejected[];
}

/** An answer for a request older than anything the partition remembers of fused requests. */
export class ExpiredPredictionError extends InvalidMessageError {
  constructor(requestId: string, createdAtMs: number) {
    super(
      'EXPIRED',
      `request ${requestId} was created at ${new Date(createdAtMs).toISOString()}, before the oldest fused request this partition remembers; whether it was fused cannot be told, so it is not joined`,
    );
  }
}

/** Fused results carry the time their join closed, so a request fused again after a failed batch is fused to the same bytes. */
export function settle(admitted: Admitted, outcomes: readonly JoinOutcome[], fusion: RequestFusion): Settled {
  const out: Settled = { fused: [], closed: [], late: [], duplicates: 0, rejected: [] };
  outcomes.forEach((outcome, i) => {
    const entry = admitted.entries[i] as JoinEntry;
    if (outcome.kind === 'fuse') {
      const predictions = [...outcome.predictions].map(([modelId, bytes]) => sameOrDecoded(admitted, entry.requestId, modelId, bytes));
      const result = fusion.fuse({ requestId: entry.requestId, predictions, why: outcome.why, awaited: outcome.awaited, nowMs: outcome.fusedAtMs });
      out.fused.push(result);
      out.closed.push({
        requestCreatedAtMs: result.requestCreatedAtMs,
        awaited: outcome.awaited,
        probes: outcome.probes,
        answered: new Map(predictions.map((p) => [p.modelId, p.status])),
      });
    } else if (outcome.kind === 'duplicate') {
      out.duplicates++;
    } else if (outcome.kind === 'late' && entry.kind === 'prediction') {
      out.late.push(entry.modelId);
    } else if (outcome.kind === 'expired' && entry.kind === 'prediction') {
      const error = new ExpiredPredictionError(entry.requestId, entry.requestCreatedAtMs);
      const message = {
        offset: entry.offset,
        key: Buffer.from(entry.requestId),
        value: entry.payload,
        timestamp: '0',
        attributes: 0,
        headers: {},
      } as KafkaMessage;
      out.rejected.push({ message, error });
    }
  });
  return out;
}

/** The prediction the join stored, from this batch's decoding when it is the same bytes. */
function sameOrDecoded(admitted: Admitted, requestId: string, modelId: string, bytes: Buffer): Prediction {
  const here = admitted.decoded.get(`${requestId}\n${modelId}`);
  // The join keeps a model's first prediction; a differing duplicate in this batch is not it.
  return here?.bytes.equals(bytes) ? here.prediction : codecs.prediction.decode(bytes);
}

/** The dead-letter records of a batch's rejected messages (each logged). */
export function deadLetters(source: BatchSource, rejected: readonly Rejected[], service: string, nowMs: number, logger: Logger): Message[] {
  return rejected.map(({ message, error }) => rejectMessage(source, message, error, service, nowMs, logger));
}
