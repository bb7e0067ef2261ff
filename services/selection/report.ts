import { dirname, relative } from 'node:path';
import { formatTable } from '../core/table.js';
import type { EvaluationMetrics } from '../ml/metrics.js';
import type { FusionCandidate } from './candidates.js';
import { COMPLEXITY_NAMES, SE_MULTIPLIER, complexityOf } from './choice-rule.js';
import type { SelectionResult } from './select-ensemble.js';
import { type Bar, barChartSvg } from './svg-chart.js';

/** What a candidate is, in three table cells: model or strategy, weighting, models. */
function describe(c: FusionCandidate): [string, string, string] {
  if (c.subset.name === 'single') return [c.subset.models[0]!, '', 'single'];
  return [c.strategy, c.weighting, `${c.subset.name} (${c.subset.models.length})`];
}

function pick(result: SelectionResult, c: FusionCandidate): string {
  return [
    c === result.chosen ? 'chosen' : '',
    c === result.lowestError && c !== result.chosen ? 'lowest cv error' : '',
    c === result.bestModel ? 'best model' : '',
  ]
    .filter((s) => s !== '')
    .join(', ');
}

const f3 = (x: number) => x.toFixed(3);
const f4 = (x: number) => x.toFixed(4);
const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

function cvError(result: SelectionResult, c: FusionCandidate): string {
  const s = result.scores[result.candidates.indexOf(c)]!;
  return `${pct(s.meanError)} ± ${pct(s.standardError)}`;
}

/** Whether the chosen config is at least as accurate on test as the best single model there, and by how much. */
export function againstBestSingle(result: SelectionResult): { atOrAbove: boolean; gapPoints: number } {
  const gap = result.chosen.test.accuracy - result.bestModelOnTest.test.accuracy;
  // Accuracies are counts over the same rows: a difference below half a row is rounding.
  const halfRow = 0.5 / result.sizes.test;
  return { atOrAbove: gap > -halfRow, gapPoints: 100 * gap };
}

/** Every model and strategy side by side, validation and test: for the terminal. */
export function selectionTable(result: SelectionResult): string {
  return formatTable(
    [
      'model / strategy',
      'weights',
      'models',
      'cv error ± se',
      'val acc',
      'val F1',
      'val log loss',
      'test acc',
      'test F1',
      'test log loss',
      'test Brier',
      'pick',
    ],
    result.candidates.map((c) => [
      ...describe(c),
      cvError(result, c),
      f3(c.validation.accuracy),
      f3(c.validation.macroF1),
      f4(c.validation.logLoss),
      f3(c.test.accuracy),
      f3(c.test.macroF1),
      f4(c.test.logLoss),
      f4(c.test.brier),
      pick(result, c),
    ]),
  );
}

/** The test accuracy of every model and strategy; the chosen config stands out. */
export function selectionChart(result: SelectionResult): string {
  const bars: Bar[] = result.candidates.map((c) => {
    const [name, weighting, models] = describe(c);
    return {
      label: c.subset.name === 'single' ? name : `${name}, ${weighting}, ${models}`,
      value: c.test.accuracy,
      kind: c === result.chosen ? 'highlight' : c.subset.name === 'single' ? 'model' : 'fusion',
    };
  });
  return barChartSvg(`${result.dataset}: test accuracy per model and fusion strategy`, bars);
}

/** A report for people: setup, the chosen config, full metric tables, weights and the confusion matrix. */
export function selectionReport(result: SelectionResult, chartFile: string): string {
  const { chosen } = result;
  const lines: string[] = [
    `# Ensemble selection: ${result.dataset}`,
    '',
    setupParagraph(result),
    '',
    ...chosenConfigSection(result),
    '',
    '## Validation',
    '',
    metricsTable(result, (c) => c.validation),
    '',
    '## Test',
    '',
    metricsTable(result, (c) => c.test),
    '',
    `![Test accuracy per model and strategy](${chartFile})`,
    '',
    '## Fitted weights',
    '',
    weightsTable(result),
    '',
    `## Confusion matrix of the chosen config (test)`,
    '',
    'Rows: true class; columns: predicted class.',
    '',
    markdownTable(
      ['true \\ predicted', ...result.classes],
      chosen.testConfusion.map((row, t) => [result.classes[t]!, ...row.map(String)]),
    ),
    '',
  ];
  return lines.join('\n');
}

/** Where the predictions came from and how every candidate was scored. */
function setupParagraph(result: SelectionResult): string {
  const { sizes } = result;
  const setup =
    result.predictionFiles === undefined
      ? `Seed ${result.seed}. Stratified split: ${sizes.train} training, ${sizes.validation} validation and ${sizes.test} test rows. ` +
        'The models are fitted on the training rows; fusion weights and the stacking meta-model on the validation rows. '
      : `Predictions of ${result.predictionFiles.length} models read from ${result.predictionFiles.map((f) => `\`${f}\``).join(', ')}. ` +
        `Seed ${result.seed}. Their rows are split (stratified) into ${sizes.validation} validation rows, on which the fusion is ` +
        `fitted and chosen, and ${sizes.test} test rows, only reported. `;
  return (
    setup +
    `Every candidate is scored on the same ${result.folds}-fold cross-validation of the validation rows, repeated ${result.repetitions} times ` +
    `(${result.folds * result.repetitions} folds); fitted weights and the meta-model are fitted on the other folds, ` +
    'so no config is scored on rows it was fitted on; the served weights and meta-model are refitted on all validation rows. ' +
    'Validation figures below are out-of-fold (first repetition). ' +
    'The greedy subset adds, one at a time, the model that most lowers the validation log loss of the equal-weight average, ' +
    `while it does: ${result.greedyOrder.join(', ')}.`
  );
}

/** The choice rule, the chosen config and how it compares with the best single model. */
function chosenConfigSection(result: SelectionResult): string[] {
  const { chosen, bestModel } = result;
  const [chosenName, chosenWeighting, chosenModels] = describe(chosen);
  const versus = againstBestSingle(result);
  return [
    '## Chosen config',
    '',
    `Choice rule: the lowest mean cross-validation error rate plus ${SE_MULTIPLIER} of its standard errors (corrected for the ` +
      'overlap of the folds; the ± figures below) is the bar; of the candidates at or ' +
      'below it the simplest wins (single model < equal weights < fitted weights < stacking); within a level the lowest ' +
      'mean log loss (hard voting last), then the lowest mean error, then fewer models, then the strategy order ' +
      'weighted-average, soft-voting, weighted-sum, hard-voting. ' +
      `Lowest mean error: ${describe(result.lowestError)
        .filter((s) => s !== '')
        .join(', ')} (${cvError(result, result.lowestError)}); ` +
      `bar ${pct(result.bar)}; chosen level: ${COMPLEXITY_NAMES[complexityOf(chosen)]}.`,
    '',
    `- strategy: **${chosenName}**${chosen.subset.name === 'single' ? '' : `, ${chosenWeighting}, ${chosenModels} models`}`,
    `- models: ${chosen.subset.models.map((id) => (chosen.strategy === 'stacking' ? id : `${id} (weight ${chosen.weights[id]})`)).join(', ')}`,
    `- validation: accuracy ${f3(chosen.validation.accuracy)}, log loss ${f4(chosen.validation.logLoss)}`,
    `- test: accuracy ${f3(chosen.test.accuracy)}, macro F1 ${f3(chosen.test.macroF1)}, log loss ${f4(chosen.test.logLoss)}`,
    `- cross-validation error: ${cvError(result, chosen)}`,
    `- best single model by the same rule: ${bestModel.subset.models[0]} (test accuracy ${f3(bestModel.test.accuracy)})`,
    `- best single model on test: ${result.bestModelOnTest.subset.models[0]} (test accuracy ${f3(result.bestModelOnTest.test.accuracy)}); ` +
      `the chosen config is ${versus.atOrAbove ? 'at or above' : 'below'} it (${versus.gapPoints >= 0 ? '+' : ''}${versus.gapPoints.toFixed(2)} pp). ` +
      'How often that holds over seeds: `select --seeds N`.',
    `- files: ${[result.files.config, result.files.metaArtifact]
      .filter((f) => f !== undefined)
      .map((f) => `\`${relative(dirname(result.files.report), f)}\``)
      .join(', ')}`,
  ];
}

function metricsTable(result: SelectionResult, part: (c: FusionCandidate) => EvaluationMetrics): string {
  return markdownTable(
    ['model / strategy', 'weights', 'models', 'cv error ± se', 'accuracy', 'macro precision', 'macro recall', 'macro F1', 'log loss', 'Brier', 'pick'],
    result.candidates.map((c) => {
      const m = part(c);
      return [
        ...describe(c),
        cvError(result, c),
        f3(m.accuracy),
        f3(m.macroPrecision),
        f3(m.macroRecall),
        f3(m.macroF1),
        f4(m.logLoss),
        f4(m.brier),
        pick(result, c),
      ];
    }),
  );
}

function weightsTable(result: SelectionResult): string {
  const models = result.candidates.filter((c) => c.subset.name === 'single').map((c) => c.subset.models[0]!);
  return markdownTable(
    ['strategy', 'models', ...models],
    result.candidates
      .filter((c) => c.weighting === 'fitted')
      .map((c) => [c.strategy, describe(c)[2], ...models.map((id) => (c.weights[id] === undefined ? '' : String(c.weights[id])))]),
  );
}

function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const numeric = header.map((_, i) => rows.length > 0 && rows.every((r) => /^-?[\d.]*$/.test(r[i] ?? '')));
  const line = (cells: readonly string[]) => `| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`;
  return [line(header), line(numeric.map((n) => (n ? '---:' : '---'))), ...rows.map(line)].join('\n');
}
