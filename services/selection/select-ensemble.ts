import { mkdir, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { type AggregatorConfig, CONFIG_DEFAULTS, validateAggregatorConfig } from '../core/ensemble-config.js';
import { stackingFeatureNames } from '../core/fusion/index.js';
import { BREAKER_DEFAULTS } from '../core/ensemble-config.js';
import { ARTIFACT_SCHEMA_VERSION, type ModelArtifact, paramsVersion, saveArtifact } from '../ml/artifact.js';
import type { DatasetSource } from '../ml/dataset.js';
import type { ModelFamily } from '../ml/models/index.js';
import { createRng, deriveSeed } from '../ml/random.js';
import { DEFAULT_SPLIT_FRACTIONS } from '../ml/split.js';
import type { TrainSummary } from '../ml/trainer.js';
import { type BasePredictions, predictBaseModels } from './base-predictions.js';
import { type EvaluationContext, type FusionCandidate, equalAverageLoss, evaluateSubset, singleModelCandidate } from './candidates.js';
import { type CandidateScore, chooseCandidate } from './choice-rule.js';
import { stratifiedFolds } from './folds.js';
import { greedyForwardSelection } from './greedy.js';
import { basePredictionsFromFiles, readPredictionFile } from './prediction-files.js';
import { selectionChart, selectionReport, selectionTable } from './report.js';

/** Folds of each repetition of the cross-validation over the validation rows. */
export const SELECTION_FOLDS = 5;
/** Repetitions of that cross-validation, each with its own shuffle: 15 folds in all, so the standard error means something. */
export const SELECTION_REPETITIONS = 3;

export interface SelectionOptions {
  /** A built-in data set's name, or a loaded one (`loadCsvDataset`). */
  dataset: DatasetSource;
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
  dataset: string;
  seed: number;
  classes: string[];
  sizes: { train: number; validation: number; test: number };
  folds: number;
  repetitions: number;
  /** One per model on its own (in model order), then every strategy over the full and the greedy subset. */
  candidates: FusionCandidate[];
  /** Cross-validation score of each candidate, in the same order. */
  scores: CandidateScore[];
  /** The single model the choice rule picks among the single models. */
  bestModel: FusionCandidate;
  /** The single model with the highest test accuracy (reported, never used to choose). */
  bestModelOnTest: FusionCandidate;
  /** The candidate the choice rule picks: what `aggregator.json` configures. */
  chosen: FusionCandidate;
  /** The candidate with the lowest mean cross-validation error, and the bar of the one-standard-error rule. */
  lowestError: FusionCandidate;
  bar: number;
  /** Model ids in the order greedy forward selection added them. */
  greedyOrder: string[];
  config: AggregatorConfig;
  files: { config: string; report: string; chart: string; metaArtifact?: string };
  /** The terminal table of every candidate. */
  table: string;
  /** Models the project trained: the served artifacts and the split. */
  training?: TrainSummary;
  /** Where the predictions came from, when they were read from files. */
  predictionFiles?: string[];
}

/**
 * Trains the models, evaluates them and every fusion strategy on the same validation and test
 * predictions, chooses one (see `chooseFromPredictions`) and writes it with its report.
 */
export async function selectEnsemble(options: SelectionOptions): Promise<SelectionResult & { training: TrainSummary }> {
  const seed = options.seed ?? 42;
  const base = await predictBaseModels({
    dataset: options.dataset,
    ...(options.families === undefined ? {} : { families: options.families }),
    seed,
    modelsDir: join(options.outDir, 'models'),
    ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
  });
  const result = await chooseFromPredictions(base, { outDir: options.outDir, ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }) });
  return { ...result, training: base.training };
}

/**
 * Evaluates every model and fusion strategy on the models' validation and test predictions, chooses
 * one on the validation rows, and writes `aggregator.json`, the stacking meta-model if chosen,
 * `report.md` and a chart to `outDir`.
 *
 * Candidates are each model alone, and over all models and over the greedy subset: every weighted
 * strategy with equal weights and with fitted weights (log-loss optimal mixture weights for the
 * averaging strategies, accuracy-optimal vote weights for hard voting), and stacking. Every candidate
 * is scored on the same folds of a cross-validation of the validation rows repeated
 * `SELECTION_REPETITIONS` times; fitted weights and the meta-model are fitted on the other folds, so no
 * candidate is judged on rows it was fitted on. `chooseCandidate` (choice-rule.ts) picks: the simplest
 * candidate within one standard error of the lowest mean error. A fusion must beat the best single
 * model by more than the noise of the validation rows to be chosen over it. Test figures are reported
 * beside, never used to choose. The greedy subset itself is picked on all validation rows, so its
 * candidates' figures lean optimistic, if only slightly: it is a choice among a handful of subsets.
 */
export async function chooseFromPredictions(
  base: BasePredictions,
  options: { outDir: string; onProgress?: (line: string) => void; predictionFiles?: string[] },
): Promise<SelectionResult> {
  const log = options.onProgress ?? (() => {});
  const { singles, candidates, greedyOrder } = evaluateCandidates(base, log);
  const choice = chooseCandidate(candidates, SELECTION_FOLDS);
  const chosen = candidates[choice.chosen]!;
  const bestModel = singles[chooseCandidate(singles, SELECTION_FOLDS).chosen]!;
  const bestModelOnTest = singles.reduce((a, b) => (b.test.accuracy > a.test.accuracy ? b : a));

  const { config, configPath, metaArtifact } = await writeSelectedConfig(base, chosen, options.outDir);
  const result: SelectionResult = {
    dataset: base.dataset,
    seed: base.seed,
    classes: base.classes,
    sizes: base.sizes,
    folds: SELECTION_FOLDS,
    repetitions: SELECTION_REPETITIONS,
    candidates,
    scores: choice.scores,
    bestModel,
    bestModelOnTest,
    chosen,
    lowestError: candidates[choice.lowestError]!,
    bar: choice.bar,
    greedyOrder,
    config,
    ...(options.predictionFiles === undefined ? {} : { predictionFiles: options.predictionFiles }),
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

/** Writes `aggregator.json` for the chosen candidate, and its stacking meta-model if it has one. */
async function writeSelectedConfig(
  base: BasePredictions,
  chosen: FusionCandidate,
  outDir: string,
): Promise<{ config: AggregatorConfig; configPath: string; metaArtifact: string | undefined }> {
  await mkdir(outDir, { recursive: true });
  const configPath = join(outDir, 'aggregator.json');
  const metaArtifact = chosen.meta === undefined ? undefined : await saveMetaArtifact(base, chosen, join(outDir, 'models'));
  const config = selectedConfig(base.classes, chosen, metaArtifact === undefined ? undefined : relative(outDir, metaArtifact));
  await writeFile(configPath, `${JSON.stringify(config, null, 2)}\n`);
  return { config, configPath, metaArtifact };
}

/** Each model alone, then (with more than one model) every strategy over all models and over the greedy subset. */
function evaluateCandidates(
  base: BasePredictions,
  log: (line: string) => void,
): { singles: FusionCandidate[]; candidates: FusionCandidate[]; greedyOrder: string[] } {
  const context: EvaluationContext = {
    classes: base.classes,
    yValidation: base.yValidation,
    yTest: base.yTest,
    folds: Array.from({ length: SELECTION_REPETITIONS }, (_, r) =>
      stratifiedFolds(base.yValidation, SELECTION_FOLDS, createRng(deriveSeed(base.seed, r === 0 ? 'selection:folds' : `selection:folds:${r}`))),
    ),
    onProgress: log,
  };

  const singles = base.models.map((m) => singleModelCandidate(context, m));
  log('greedy forward selection of models on validation ...');
  const greedy = greedyForwardSelection(base.models, (subset) => equalAverageLoss(context, subset));
  const greedyOrder = greedy.map((m) => m.modelId);
  log(`greedy subset: ${greedyOrder.join(', ')}`);
  const candidates = [...singles];
  if (base.models.length > 1) {
    log('fusion strategies over all models ...');
    candidates.push(...evaluateSubset(context, base.models, { name: 'all', models: base.models.map((m) => m.modelId) }));
    log('fusion strategies over the greedy subset ...');
    candidates.push(...evaluateSubset(context, base.models, { name: 'greedy', models: greedyOrder }));
  }
  return { singles, candidates, greedyOrder };
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
      breaker: { ...BREAKER_DEFAULTS },
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
      fractions: base.training === undefined ? predictionFileFractions(base) : { ...DEFAULT_SPLIT_FRACTIONS },
      sizes: base.sizes,
    },
    trainedAt: new Date().toISOString(),
    metrics: { validation: chosen.validation, test: chosen.test },
    params,
  };
  return saveArtifact(modelsDir, artifact);
}

function predictionFileFractions(base: BasePredictions): { train: number; validation: number; test: number } {
  const n = base.sizes.validation + base.sizes.test;
  return { train: 0, validation: base.sizes.validation / n, test: base.sizes.test / n };
}

export interface PredictionSelectionOptions {
  /** `PATH` or `MODEL_ID=PATH` per model (see prediction-files.ts for the formats). */
  files: readonly string[];
  /** Names the meta-model artifact and the report. @defaultValue 'predictions' */
  name?: string;
  /** Seeds the validation/test split of the rows and the folds. @defaultValue 42 */
  seed?: number;
  outDir: string;
  onProgress?: (line: string) => void;
}

/** Chooses models, strategy and weights from models' held-out predictions read from files. */
export async function selectFromPredictionFiles(options: PredictionSelectionOptions): Promise<SelectionResult> {
  const log = options.onProgress ?? (() => {});
  const files = [];
  for (const arg of options.files) {
    const file = await readPredictionFile(arg);
    log(`${file.modelId}: ${file.rows.length} predictions over ${file.classes.length} classes from ${file.path}`);
    files.push(file);
  }
  const base = basePredictionsFromFiles(files, { name: options.name ?? 'predictions', seed: options.seed ?? 42 });
  log(`${base.sizes.validation} rows to fit and choose on, ${base.sizes.test} test rows to report`);
  return chooseFromPredictions(base, { outDir: options.outDir, onProgress: log, predictionFiles: files.map((f) => f.path) });
}
