import { EnsembleError } from '../../shared/errors.js';

export type FusionErrorCode =
  | 'NO_OUTPUTS'
  | 'DUPLICATE_MODEL'
  | 'UNKNOWN_MODEL'
  | 'INVALID_WEIGHTS'
  | 'INVALID_PROBABILITIES'
  | 'INVALID_VALUE'
  | 'NON_FINITE_RESULT';

/**
 * A request's outputs cannot be fused. Deterministic, so never retriable; `modelId` names the
 * offending model when one is to blame.
 */
export class FusionError extends EnsembleError {
  override readonly code: FusionErrorCode;
  readonly modelId: string | undefined;

  constructor(code: FusionErrorCode, message: string, modelId?: string) {
    super(message, { code, retriable: false });
    this.code = code;
    this.modelId = modelId;
  }
}
