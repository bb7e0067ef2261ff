import { EnsembleError } from '../shared/errors.js';

/** A data set file that cannot be turned into a feature matrix (missing column, non-numeric value). */
export class DatasetError extends EnsembleError {
  constructor(message: string, cause?: unknown) {
    super(message, { code: 'DATASET_INVALID', cause });
  }
}

/** Arguments a training or metrics function cannot work with (mismatched lengths, empty data). */
export class MlArgumentError extends EnsembleError {
  constructor(message: string) {
    super(message, { code: 'ML_BAD_ARGUMENT' });
  }
}

/** Serialised model parameters that do not describe a usable model. */
export class ModelParamsError extends EnsembleError {
  constructor(message: string) {
    super(message, { code: 'MODEL_PARAMS_INVALID' });
  }
}

/** A model artifact file that is unreadable, malformed or fails its integrity check. */
export class ArtifactError extends EnsembleError {
  constructor(message: string, cause?: unknown) {
    super(message, { code: 'ARTIFACT_INVALID', cause });
  }
}
