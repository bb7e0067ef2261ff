import { basename } from 'node:path';
import { parseCsvRows } from '../ml/csv.js';
import { byString, readDataFile } from '../ml/dataset.js';
import { DatasetError } from '../ml/errors.js';
import { createRng, deriveSeed } from '../ml/random.js';
import { stratifiedSplit } from '../ml/split.js';
import type { BasePredictions, ModelPredictions } from './base-predictions.js';

/**
 * Held-out predictions of models the project did not train, one file per model, so `select` can
 * choose their fusion. Each row: a request id, its true label, and the model's probability of every
 * class. Two formats (plain or gzip):
 *
 * - CSV with a header: a `requestId` column, a `label` column, and one column per class named by
 *   the class label, in any order: `requestId,label,cat,dog` then `r1,dog,0.2,0.8`.
 * - JSON lines: `{"requestId":"r1","label":"dog","probabilities":{"cat":0.2,"dog":0.8}}`.
 *
 * Every file must cover the same request ids with the same labels and name the same classes.
 * Probabilities must be finite, within [0, 1], and sum to 1 within `SUM_TOLERANCE` (rounded
 * figures are fine); they are renormalised to sum to 1 exactly.
 */

export const SUM_TOLERANCE = 1e-3;
/** Share of the rows kept aside to report test figures; the rest is what the fusion is fitted and chosen on. */
export const PREDICTIONS_TEST_FRACTION = 0.25;

export interface PredictionFile {
  modelId: string;
  path: string;
  classes: string[];
  /** In file order. */
  rows: { requestId: string; label: string; probabilities: Map<string, number>; line: number }[];
}

const MODEL_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const MAX_LISTED = 10;

/** `knn=preds/knn.csv` names the model; a bare path is named after its file: `preds/knn.csv` is `knn`. */
export function parsePredictionArgument(arg: string): { modelId: string; path: string } {
  const eq = arg.indexOf('=');
  const named = eq > 0 && MODEL_ID.test(arg.slice(0, eq));
  const path = named ? arg.slice(eq + 1) : arg;
  const modelId = named
    ? arg.slice(0, eq)
    : basename(path)
        .replace(/\.gz$/i, '')
        .replace(/\.(csv|jsonl|ndjson|json)$/i, '');
  if (!MODEL_ID.test(modelId)) {
    throw new DatasetError(`predictions ${arg}: "${modelId}" is not a usable model id; name it: --predictions ID=${path}`);
  }
  return { modelId, path };
}

export async function readPredictionFile(arg: string): Promise<PredictionFile> {
  const { modelId, path } = parsePredictionArgument(arg);
  const text = await readDataFile(path, `predictions of ${modelId}`);
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const jsonLines = /\.(jsonl|ndjson|json)(\.gz)?$/i.test(path) || (!/\.csv(\.gz)?$/i.test(path) && body.trimStart().startsWith('{'));
  return jsonLines ? predictionsFromJsonLines(body, modelId, path) : predictionsFromCsv(body, modelId, path);
}

export function predictionsFromCsv(text: string, modelId: string, path: string): PredictionFile {
  const fail = (why: string): never => {
    throw new DatasetError(`predictions ${path}: ${why}`);
  };
  const [header, ...rows] = parseCsvRows(text);
  if (header === undefined || rows.length === 0) fail('has no rows');
  const names = header!.fields.map((h) => h.trim());
  const idColumn = names.indexOf('requestId');
  const labelColumn = names.indexOf('label');
  if (idColumn < 0 || labelColumn < 0) fail(`the header needs a "requestId" and a "label" column, then one column per class (it has: ${names.join(', ')})`);
  const classColumns = names.map((_, i) => i).filter((i) => i !== idColumn && i !== labelColumn);
  const classes = classColumns.map((i) => names[i]!);
  if (classes.length < 2) fail('needs a probability column for each of at least 2 classes');
  const duplicate = classes.find((c, i) => classes.indexOf(c) !== i);
  if (duplicate !== undefined) fail(`names class "${duplicate}" twice`);
  const problems: string[] = [];
  const parsed: PredictionFile['rows'] = [];
  for (const row of rows) {
    if (row.fields.length !== names.length) {
      problems.push(`line ${row.line}: ${row.fields.length} fields, header has ${names.length}`);
      continue;
    }
    const probabilities = new Map<string, number>();
    classColumns.forEach((column, k) => {
      const raw = row.fields[column]!.trim();
      probabilities.set(classes[k]!, raw === '' ? Number.NaN : Number(raw));
    });
    parsed.push({ requestId: row.fields[idColumn]!.trim(), label: row.fields[labelColumn]!.trim(), probabilities, line: row.line });
  }
  return checked({ modelId, path, classes: [...classes].sort(byString), rows: parsed }, problems);
}

export function predictionsFromJsonLines(text: string, modelId: string, path: string): PredictionFile {
  const problems: string[] = [];
  const parsed: PredictionFile['rows'] = [];
  let classes: string[] | undefined;
  text.split('\n').forEach((raw, index) => {
    const line = index + 1;
    if (raw.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      problems.push(`line ${line}: not valid JSON`);
      return;
    }
    const record = value as { requestId?: unknown; label?: unknown; probabilities?: unknown };
    const p = record?.probabilities;
    if (typeof record !== 'object' || record === null || typeof record.requestId !== 'string' || typeof record.label !== 'string') {
      problems.push(`line ${line}: needs "requestId" and "label" strings`);
      return;
    }
    if (typeof p !== 'object' || p === null || Array.isArray(p)) {
      problems.push(`line ${line}: "probabilities" must be an object of class label to probability`);
      return;
    }
    const entries = Object.entries(p as Record<string, unknown>);
    const rowClasses = entries.map(([c]) => c).sort(byString);
    if (classes === undefined) classes = rowClasses;
    else if (rowClasses.join('\u0000') !== classes.join('\u0000')) {
      problems.push(`line ${line}: classes ${rowClasses.join(', ')} differ from the first row's ${classes.join(', ')}`);
      return;
    }
    const probabilities = new Map(entries.map(([c, v]) => [c, typeof v === 'number' ? v : Number.NaN]));
    parsed.push({ requestId: record.requestId, label: record.label, probabilities, line });
  });
  if (parsed.length === 0 && problems.length === 0) throw new DatasetError(`predictions ${path}: has no rows`);
  if (classes !== undefined && classes.length < 2) problems.unshift(`needs probabilities of at least 2 classes`);
  return checked({ modelId, path, classes: classes ?? [], rows: parsed }, problems);
}

/** Row checks common to both formats; every problem is listed at once. */
function checked(file: PredictionFile, problems: string[]): PredictionFile {
  const seen = new Map<string, number>();
  for (const row of file.rows) {
    if (row.requestId === '') problems.push(`line ${row.line}: empty requestId`);
    const earlier = seen.get(row.requestId);
    if (earlier !== undefined) problems.push(`line ${row.line}: requestId "${row.requestId}" repeats line ${earlier}`);
    seen.set(row.requestId, row.line);
    if (!row.probabilities.has(row.label)) problems.push(`line ${row.line}: label "${row.label}" is not one of the classes (${file.classes.join(', ')})`);
    let sum = 0;
    for (const [c, p] of row.probabilities) {
      if (!(Number.isFinite(p) && p >= 0 && p <= 1)) problems.push(`line ${row.line}: probability of "${c}" is not a number in [0, 1]`);
      else sum += p;
    }
    if (Math.abs(sum - 1) > SUM_TOLERANCE) problems.push(`line ${row.line}: probabilities sum to ${sum}, not 1 within ${SUM_TOLERANCE}`);
    else for (const [c, p] of row.probabilities) row.probabilities.set(c, p / sum);
  }
  if (problems.length > 0) {
    const shown = problems.length <= MAX_LISTED ? problems : [...problems.slice(0, MAX_LISTED), `and ${problems.length - MAX_LISTED} more`];
    throw new DatasetError(`predictions ${file.path}: ${problems.length} problems: ${shown.join('; ')}`);
  }
  return file;
}

/**
 * Joins the files on request id (every file must hold every request, with the same label) and splits
 * the rows, stratified and seeded, into validation rows and test rows, in the first file's order.
 */
export function basePredictionsFromFiles(files: readonly PredictionFile[], options: { name: string; seed: number }): BasePredictions {
  if (files.length === 0) throw new DatasetError('no predictions files');
  const first = files[0]!;
  checkNamesAndClasses(files);
  const classes = first.classes;
  const byModel = files.map((f) => new Map(f.rows.map((r) => [r.requestId, r])));
  checkSameRequests(files, byModel);
  const classIndex = new Map(classes.map((c, k) => [c, k]));
  const y = Int32Array.from(first.rows, (r) => classIndex.get(r.label)!);
  const split = stratifiedSplit(y, createRng(deriveSeed(options.seed, 'predictions:split')), {
    train: 0,
    validation: 1 - PREDICTIONS_TEST_FRACTION,
    test: PREDICTIONS_TEST_FRACTION,
  });
  const probabilitiesOf = (m: number, rows: readonly number[]) =>
    rows.map((i) => {
      const row = byModel[m]!.get(first.rows[i]!.requestId)!;
      return Float64Array.from(classes, (c) => row.probabilities.get(c)!);
    });
  const models: ModelPredictions[] = files.map((f, m) => ({
    modelId: f.modelId,
    validation: probabilitiesOf(m, split.validation),
    test: probabilitiesOf(m, split.test),
  }));
  return {
    dataset: options.name,
    seed: options.seed,
    classes,
    sizes: { train: 0, validation: split.validation.length, test: split.test.length },
    yValidation: Int32Array.from(split.validation, (i) => y[i]!),
    yTest: Int32Array.from(split.test, (i) => y[i]!),
    models,
    requestIds: { validation: split.validation.map((i) => first.rows[i]!.requestId), test: split.test.map((i) => first.rows[i]!.requestId) },
  };
}

/** Every file has its own model id and names the first file's classes in the same order. */
function checkNamesAndClasses(files: readonly PredictionFile[]): void {
  const first = files[0]!;
  const ids = new Set<string>();
  for (const f of files) {
    if (ids.has(f.modelId)) throw new DatasetError(`two predictions files are named "${f.modelId}"; name them: --predictions ID=PATH`);
    ids.add(f.modelId);
    if (f.classes.join('\u0000') !== first.classes.join('\u0000')) {
      throw new DatasetError(`predictions ${f.path} name the classes ${f.classes.join(', ')}; ${first.path} names ${first.classes.join(', ')}`);
    }
  }
}

/** Every file holds exactly the first file's requests, each with the same label. */
function checkSameRequests(files: readonly PredictionFile[], byModel: readonly Map<string, PredictionFile['rows'][number]>[]): void {
  const first = files[0]!;
  for (const [m, f] of files.entries()) {
    const missing = first.rows.filter((r) => !byModel[m]!.has(r.requestId)).map((r) => r.requestId);
    const extra = f.rows.length - (first.rows.length - missing.length);
    if (missing.length > 0 || extra > 0) {
      throw new DatasetError(
        `predictions ${f.path} do not cover the same requests as ${first.path}: ` +
          `${missing.length} missing (${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}), ${extra} not in ${first.path}`,
      );
    }
    const conflict = first.rows.find((r) => byModel[m]!.get(r.requestId)!.label !== r.label);
    if (conflict !== undefined) {
      const other = byModel[m]!.get(conflict.requestId)!;
      throw new DatasetError(
        `request "${conflict.requestId}" has label "${conflict.label}" in ${first.path} (line ${conflict.line}) and "${other.label}" in ${f.path} (line ${other.line})`,
      );
    }
  }
}

/** One model's predictions in the CSV format above, classes in the given order. */
export function predictionsCsv(classes: readonly string[], rows: readonly { requestId: string; label: string; probabilities: ArrayLike<number> }[]): string {
  const quote = (s: string) => (/[",\r\n]/.test(s) || s !== s.trim() ? `"${s.replace(/"/g, '""')}"` : s);
  const lines = [['requestId', 'label', ...classes].map(quote).join(',')];
  for (const r of rows) lines.push([quote(r.requestId), quote(r.label), ...Array.from(r.probabilities, (p) => String(p))].join(','));
  return `${lines.join('\n')}\n`;
}
