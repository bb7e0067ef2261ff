import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatTable } from '../core/table.js';
import { againstBestSingle } from './report.js';
import type { SelectionResult } from './select-ensemble.js';

/**
 * `select --seeds N`: the same selection run with seeds 1..N (each a new split, new models, new
 * folds), to say how often the chosen config is at or above the best single model on the test rows.
 * One run is one draw; the count over seeds is the figure that means something.
 */

export interface SeedRow {
  seed: number;
  bestSingle: string;
  bestSingleAccuracy: number;
  chosen: string;
  chosenAccuracy: number;
  atOrAbove: boolean;
  /** Chosen minus best single, in percentage points of test accuracy. */
  gapPoints: number;
}

export interface SeedSweep {
  dataset: string;
  rows: SeedRow[];
  /** How many seeds had the chosen config at or above the best single model. */
  atOrAbove: number;
  worstGapPoints: number;
  table: string;
  reportPath: string;
}

export function describeChosen(result: SelectionResult): string {
  const c = result.chosen;
  if (c.subset.name === 'single') return `single: ${c.subset.models[0]}`;
  return `${c.strategy}, ${c.weighting}, ${c.subset.name} (${c.subset.models.length})`;
}

export function seedRow(result: SelectionResult): SeedRow {
  const versus = againstBestSingle(result);
  return {
    seed: result.seed,
    bestSingle: result.bestModelOnTest.subset.models[0]!,
    bestSingleAccuracy: result.bestModelOnTest.test.accuracy,
    chosen: describeChosen(result),
    chosenAccuracy: result.chosen.test.accuracy,
    atOrAbove: versus.atOrAbove,
    gapPoints: versus.gapPoints,
  };
}

/** Runs `run(seed, dir)` for each seed into `<outDir>/seed-<n>/` and writes `<outDir>/seeds.md`. */
export async function sweepSeeds(
  dataset: string,
  seeds: readonly number[],
  outDir: string,
  run: (seed: number, dir: string) => Promise<SelectionResult>,
  onProgress?: (line: string) => void,
): Promise<SeedSweep> {
  const rows: SeedRow[] = [];
  for (const seed of seeds) {
    onProgress?.(`seed ${seed} (${rows.length + 1} of ${seeds.length}) ...`);
    const row = seedRow(await run(seed, join(outDir, `seed-${seed}`)));
    onProgress?.(
      `seed ${seed}: best single ${row.bestSingle} ${row.bestSingleAccuracy.toFixed(4)}, chosen ${row.chosen} ${row.chosenAccuracy.toFixed(4)} ` +
        `(${row.atOrAbove ? 'at or above' : 'below'})`,
    );
    rows.push(row);
  }
  const atOrAbove = rows.filter((r) => r.atOrAbove).length;
  const worstGapPoints = Math.min(...rows.map((r) => r.gapPoints));
  const summary = `${dataset}: chosen config at or above the best single model on test in ${atOrAbove} of ${rows.length} seeds; worst gap ${signed(worstGapPoints)} pp`;
  const header = ['seed', 'best single (test)', 'test acc', 'chosen', 'test acc', 'at or above', 'gap (pp)'];
  const cells = rows.map((r) => [
    String(r.seed),
    r.bestSingle,
    r.bestSingleAccuracy.toFixed(4),
    r.chosen,
    r.chosenAccuracy.toFixed(4),
    r.atOrAbove ? 'yes' : 'no',
    signed(r.gapPoints),
  ]);
  const table = `${formatTable(header, cells)}\n\n${summary}`;
  await mkdir(outDir, { recursive: true });
  const reportPath = join(outDir, 'seeds.md');
  const markdown = [
    `# Selection over ${rows.length} seeds: ${dataset}`,
    '',
    'Each seed is a new stratified split, new base models and new folds. "Best single" is the single model with the highest ' +
      'test accuracy (known only afterwards); "chosen" is what `select` chose on the validation rows.',
    '',
    `| ${header.join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...cells.map((c) => `| ${c.join(' | ')} |`),
    '',
    `**${summary}.**`,
    '',
  ].join('\n');
  await writeFile(reportPath, markdown);
  return { dataset, rows, atOrAbove, worstGapPoints, table, reportPath };
}

function signed(x: number): string {
  return `${x >= 0 ? '+' : ''}${x.toFixed(2)}`;
}
