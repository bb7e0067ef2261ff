/** TypeScript shapes of the Avro records in schemas/ (field names and nullability match). */

export interface FeatureEvent {
  requestId: string;
  createdAtMs: number;
  features: number[];
  deadlineMs: number | null;
}

export type PredictionStatus = 'OK' | 'ERROR' | 'ABSTAIN';

export interface Prediction {
  requestId: string;
  modelId: string;
  modelVersion: string;
  status: PredictionStatus;
  probabilities: number[] | null;
  value: number | null;
  error: string | null;
  requestCreatedAtMs: number;
  deadlineMs: number | null;
  receivedAtMs: number;
  inferenceMicros: number;
}

export type FusionStatus = 'COMPLETE' | 'PARTIAL' | 'INSUFFICIENT';
export type MissingReason = 'DEADLINE' | 'ERROR' | 'ABSTAIN' | 'CIRCUIT_OPEN';

export interface FusedPrediction {
  requestId: string;
  status: FusionStatus;
  strategy: string;
  label: string | null;
  probabilities: number[] | null;
  value: number | null;
  contributors: { modelId: string; modelVersion: string; weight: number }[];
  missing: { modelId: string; reason: MissingReason; detail: string | null }[];
  requestCreatedAtMs: number;
  fusedAtMs: number;
  /** The class labels in the order of `probabilities` (empty for regression). Always set when decoded; writers may omit it (Avro default []). */
  classes?: string[];
}

export interface Label {
  requestId: string;
  label: string | null;
  value: number | null;
  observedAtMs: number;
}

export interface DeadLetter {
  sourceTopic: string;
  sourcePartition: number;
  sourceOffset: string;
  key: Buffer | null;
  value: Buffer | null;
  reasonCode: string;
  reason: string;
  service: string;
  failedAtMs: number;
}

export interface MetricsEntry {
  subject: string;
  labelled: number;
  accuracy: number | null;
  macroPrecision: number | null;
  macroRecall: number | null;
  macroF1: number | null;
  logLoss: number | null;
  brier: number | null;
  mae: number | null;
  rmse: number | null;
  latencyP50Ms: number | null;
  latencyP95Ms: number | null;
  latencyP99Ms: number | null;
  late: number;
  partial: number;
  weight: number | null;
}

export interface EnsembleMetrics {
  generatedAtMs: number;
  window: string;
  source: string;
  entries: MetricsEntry[];
}
