import { mkdir, writeFile } from 'node:fs/promises';
import type { TrainSummary } from '../ml/trainer.js';
import { join, relative } from 'node:path';
import { type AggregatorConfig, CONFIG_DEFAULTS, validateAggregatorConfig } from '../aggregator/config.js';
import { stackingFeatureNames } from '../aggregator/fusion/index.js';
import { MODEL_HEALTH_DEFAULTS } from '../aggregator/model-health.js';
import { ARTIFACT_SCHEMA_VERSION, type ModelArtifact, paramsVersion, saveArtifact } from '../ml/artifact.js';
import type { DatasetName } from '../ml/dataset.js';
import type { ModelFamily } from '../ml/models/index.js';
import { createRng, deriveSeed } from '../ml/random.js';
import { DEFAULT_SPLIT_FRACTIONS } from '../ml/split.js';
import { type BasePredictions, predictBaseModels } from './base-predictions.js';
import { type EvaluationContext, type FusionCandidate, equalAverageLoss, evaluateSubset, singleModelCandidate } from './candidates.js';
import { stratifiedFolds } from './folds.js';
import { greedyForwardSelection } from './greedy.js';
import { selectionChart, selectionReport, selectionTable } from './report.js';

/** Cross-validation folds over the validation rows for fitted weights and the stacking meta-model. */
export const SELECTION_FOLDS = 5;

export interface SelectionOptions {
  dataset: DatasetName;
  /** @defaultValue every model family */
  families?: readonly ModelFamily[];
  /** Seeds the split, the models (as `train` does) and the folds. @defaultValue 42 */
  seed?: number;
  /** Receives `aggregator.json`, `report.md`, `test-accuracy.svg` and `models/` (base models, meta-model). */
  outDir: string;
  /** One line per long step. */
  onProgress?: (line: string) => void;
}

export interface SelectionResult {
  dataset: DatasetName;
  seed: number;
  classes: string[];
  sizes: { train: number; validation: number; test: number };
  folds: number;
  /** One per model on its own (in family order), then every strategy over the full and the greedy subset. */
  candidates: FusionCandidate[];
  /** The single model with the lowest validation log loss. */
  bestModel: FusionCandidate;
  /** The candidate with the lowest validation log loss: what `aggregator.json` configures. */
  chosen: FusionCandidate;
  /** Model ids in the order greedy forward selection added them. */
  greedyOrder: string[];
  config: AggregatorConfig;
  files: { config: string; report: string; chart: string; metaArtifact?: string };
  /** The terminal table of every candidate. */
  table: string;
  /** What the trainer reported: the served artifacts and the split. */
  training: TrainSummary;
}

/**
 * Trains the models, evaluates them and every fusion strategy on the same validation and test
 * predictions, picks the config with the lowest validation log loss and writes it with its report.
 *
 * Candidates are each model alone, and over all models and over the greedy subset: every weighted
 * strategy with equal weights and with fitted weights (log-loss optimal mixture weights for the
 * averaging strategies, accuracy-optimal vote weights for hard voting), and stacking.
 *
 * The choice uses validation log loss, not accuracy: it is a proper scoring rule that reads the whole
 * fused distribution (what the aggregator publishes), so it separates configs whose accuracies differ
 * by a handful of rows and is less noisy on a validation part of a few thousand rows, and it is the
 * loss the weights and the meta-model minimise, so fitting and choosing pull the same way. The price:
 * hard voting, whose vote shares are crude probabilities, is not chosen. Ties go to the earlier
 * candidate, the simpler config. Since each model alone is a candidate, the chosen config is never
 * worse on validation than the best single model. The greedy subset itself is picked on all
 * validation rows, so its candidates' validation figures lean optimistic, if only slightly: it is a
 * choice among a handful of subsets, not a fit.
 */
export async function selectEnsemble(options: SelectionOptions): Promise<SelectionResult> {
  const seed = options.seed ?? 42;
  const log = options.onProgress ?? (() => {});
  const modelsDir = join(options.outDir, 'models');
  const base = await predictBaseModels({
    dataset: options.dataset,
    ...(options.families === undefined ? {} : { families: options.families }),
    seed,
    modelsDir,
    onProgress: log,
  });
  const context: EvaluationContext = {
    classes: base.classes,
    yValidation: base.yValidation,
    yTest: base.yTest,
    folds: stratifiedFolds(base.yValidation, SELECTION_FOLDS, createRng(deriveSeed(seed, 'selection:folds'))),
    onProgress: log,
  };

  const singles = base.models.map((m) => singleModelCandidate(context, m));
  log('greedy forward selection of models on validation ...');
  const greedy = greedyForwardSelection(base.models, (subset) => equalAverageLoss(context, subset));
  const greedyOrder = greedy.map((m) => m.modelId);
  log(`greedy subset: ${greedyOrder.join(', ')}`);
  log('fusion strategies over all models ...');
  const candidates = [...singles, ...evaluateSubset(context, base.models, { name: 'all', models: base.models.map((m) => m.modelId) })];
  log('fusion strategies over the greedy subset ...');
  candidates.push(...evaluateSubset(context, base.models, { name: 'greedy', models: greedyOrder }));

  const lowestLoss = (list: readonly FusionCandidate[]) => list.reduce((a, b) => (b.validation.logLoss < a.validation.logLoss ? b : a));
  const chosen = lowestLoss(candidates);
  const bestModel = lowestLoss(singles);

  await mkdir(options.outDir, { recursive: true });
  const configPath = join(options.outDir, 'aggregator.json');
  const metaArtifact = chosen.meta === undefined ? undefined : await saveMetaArtifact(base, chosen, modelsDir);
  const config = selectedConfig(base.classes, chosen, metaArtifact === undefined ? undefined : relative(options.outDir, metaArtifact));
  await writeFile(configPath, `${JSON.stringify(config, null, 2)}\n`);

  const result: SelectionResult = {
    dataset: base.dataset,
    seed,
    classes: base.classes,
    sizes: { train: base.split.train.length, validation: base.split.validation.length, test: base.split.test.length },
    folds: SELECTION_FOLDS,
    candidates,
    bestModel,
    chosen,
    greedyOrder,
    config,
    training: base.training,
    files: {
      config: configPath,
      report: join(options.outDir, 'report.md'),
      chart: join(options.outDir, 'test-accuracy.svg'),
      ...(metaArtifact === undefined ? {} : { metaArtifact }),
    },
    table: '',
  };
  result.table = selectionTable(result);
  await writeFile(result.files.chart, selectionChart(result));
  await writeFile(result.files.report, selectionReport(result, 'test-accuracy.svg'));
  return result;
}

/**
 * The aggregator config of a candidate, validated. A model whose fitted weight is 0 is left out:
 * it cannot change the result, and the aggregator would wait for it all the same.
 */
function selectedConfig(classes: string[], chosen: FusionCandidate, metaArtifact: string | undefined): AggregatorConfig {
  return validateAggregatorConfig(
    {
      task: 'classification',
      classes,
      strategy: chosen.strategy,
      models: chosen.subset.models.filter((id) => chosen.weights[id]! > 0).map((id) => ({ id, weight: chosen.weights[id]! })),
      ...CONFIG_DEFAULTS,
      breaker: { ...MODEL_HEALTH_DEFAULTS },
      ...(metaArtifact === undefined ? {} : { stacking: { metaArtifact } }),
    },
    'selected config',
  );
}

/**
 * Saves the stacking meta-model as a versioned artifact. Its training rows are the validation part
 * of the recorded split; its validation metrics are the out-of-fold ones.
 */
async function saveMetaArtifact(base: BasePredictions, chosen: FusionCandidate, modelsDir: string): Promise<string> {
  const params = chosen.meta!.toJSON();
  const artifact: ModelArtifact = {
    schemaVersion: ARTIFACT_SCHEMA_VERSION,
    modelId: `${base.dataset}-stacking-meta`,
    version: paramsVersion(params),
    family: 'logistic-regression',
    dataset: base.dataset,
    classes: base.classes,
    featureNames: stackingFeatureNames(chosen.subset.models, base.classes),
    seed: base.seed,
    split: {
      fractions: { ...DEFAULT_SPLIT_FRACTIONS },
      sizes: { train: base.split.train.length, validation: base.split.validation.length, test: base.split.test.length },
    },
    trainedAt: new Date().toISOString(),
    metrics: { validation: chosen.validation, test: chosen.test },
    params,
  };
  return saveArtifact(modelsDir, artifact);
}
