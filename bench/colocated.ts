import type { Profile } from './pipeline.js';

/**
 * The co-located profiles: the same models as `synthetic` and `letter`, served by one worker
 * process (one consumer of features, one produce per fetch) instead of one process per model, so
 * one run compares the two deployments.
 */
export function colocatedProfile(base: Profile): Profile {
  const ids = base.models.map((m) => m.modelId);
  const synthetic = base.models.every((m) => m.workerArgs.includes('--synthetic'));
  const workerArgs = synthetic
    ? ['worker', '--synthetic', base.models[0]!.workerArgs[base.models[0]!.workerArgs.indexOf('--synthetic') + 1]!, '--model-id', ids.join(',')]
    : ['worker', ...base.models.flatMap((m) => m.workerArgs.slice(1))];
  // One entry: the worker's group is named after its models' ids joined by `+`.
  return { name: base.name === 'synthetic' ? 'colocated' : 'letter-colocated', models: [{ modelId: ids.join('+'), workerArgs }], config: base.config };
}

/** The profile a co-located one is built from. */
export function colocatedBase(name: string): 'synthetic' | 'letter' | undefined {
  return name === 'colocated' ? 'synthetic' : name === 'letter-colocated' ? 'letter' : undefined;
}
