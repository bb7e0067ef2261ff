import { describeError } from '../shared/errors.js';
import type { FusedPrediction, MissingReason, Prediction } from '../shared/records.js';
import type { AggregatorConfig } from '../core/ensemble-config.js';
import type { FusionResult, Fuser, ModelOutput } from '../core/fusion/index.js';

/**
 * Turns the predictions joined for one request into its fused result: who contributed, who is
 * missing and why, whether quorum was met. Pure: the caller supplies the clock and model health.
 */
export interface RequestFusionInput {
  requestId: string;
  predictions: readonly Prediction[];
  /** Why the join closed: every awaited model answered, or the deadline passed. */
  why: 'all' | 'deadline';
  /** Models the request waited for when it closed; the others' breakers were open. */
  awaited: ReadonlySet<string>;
  nowMs: number;
}

export class RequestFusion {
  constructor(
    private readonly config: AggregatorConfig,
    private readonly fuser: Fuser,
  ) {}

  fuse(input: RequestFusionInput): FusedPrediction {
    const { config } = this;
    const { outputs, versions, missing } = this.sortAnswers(input);
    const first = input.predictions[0];
    const base = {
      requestId: input.requestId,
      strategy: this.fuser.strategy,
      requestCreatedAtMs: first?.requestCreatedAtMs ?? input.nowMs,
      fusedAtMs: input.nowMs,
      classes: config.classes,
      missing,
    };
    const none = { status: 'INSUFFICIENT', label: null, probabilities: null, value: null } as const;
    if (outputs.length < config.quorum) {
      // No answer is given, but every model that answered is named (with no weight in an answer).
      const answered = outputs.map((o) => ({ modelId: o.modelId, modelVersion: versions.get(o.modelId) ?? '', weight: 0 }));
      return { ...base, ...none, contributors: answered };
    }
    let result: FusionResult;
    try {
      result = this.fuser.fuse(outputs);
    } catch (error) {
      // Inputs were validated on arrival, so this is a defect; answer explicitly rather than drop.
      const failed = outputs.map((o) => ({ modelId: o.modelId, reason: 'ERROR' as const, detail: describeError(error) }));
      return { ...base, ...none, contributors: [], missing: [...missing, ...failed] };
    }
    return {
      ...base,
      status: missing.length === 0 ? 'COMPLETE' : 'PARTIAL',
      label: result.label ?? null,
      probabilities: result.probabilities ?? null,
      value: result.value ?? null,
      contributors: outputs.map((o) => ({
        modelId: o.modelId,
        modelVersion: versions.get(o.modelId) ?? '',
        weight: result.weightsUsed[o.modelId] ?? 0,
      })),
    };
  }

  /** Each configured model's part: an output to fuse (with its version) or why it is missing. */
  private sortAnswers(input: RequestFusionInput): { outputs: ModelOutput[]; versions: Map<string, string>; missing: FusedPrediction['missing'] } {
    const { config } = this;
    const byModel = new Map<string, Prediction>();
    for (const p of input.predictions) byModel.set(p.modelId, p);
    const outputs: ModelOutput[] = [];
    const versions = new Map<string, string>();
    const missing: FusedPrediction['missing'] = [];
    for (const { id } of config.models) {
      const p = byModel.get(id);
      if (p === undefined) {
        // Not waited for and never answered: its breaker was open. Waited for: it missed the deadline.
        const reason: MissingReason = input.awaited.has(id) ? 'DEADLINE' : 'CIRCUIT_OPEN';
        missing.push({ modelId: id, reason, detail: null });
      } else if (p.status !== 'OK') {
        missing.push({ modelId: id, reason: p.status, detail: p.error });
      } else {
        outputs.push(config.task === 'classification' ? { modelId: id, probabilities: p.probabilities ?? [] } : { modelId: id, value: p.value ?? Number.NaN });
        versions.set(id, p.modelVersion);
      }
    }
    return { outputs, versions, missing };
  }
}
