import { readFile } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { repoRoot } from '../shared/repo-root.js';
import { type CsvRow, parseCsvRows } from './csv.js';
import { DatasetError } from './errors.js';

/**
 * A classification data set. `X[i][j]` is row i's value of feature column j: the number itself for
 * a numeric column, the index into `categories` for a categorical one, NaN where the value is
 * missing. Training turns categorical and missing values into model inputs (see preprocessing.ts);
 * feature events carry the same values as `X`, so a worker applies what training fitted.
 */
export interface Dataset {
  name: string;
  featureNames: string[];
  /** One per feature column, in the order of `featureNames`. */
  columns: FeatureColumn[];
  /** Sorted in plain string order, as scikit-learn's LabelEncoder sorts, so class indices match across tools. */
  classes: string[];
  X: Float64Array[];
  y: Int32Array;
  /** The `--id` column's value per row, when one was named. */
  ids?: string[];
}

export type FeatureColumn =
  | { kind: 'numeric'; missing: number }
  /** `categories` sorted in plain string order; a value is an index into it. */
  | { kind: 'categorical'; categories: string[]; missing: number };

export type DatasetName = 'letter' | 'spam' | 'satellite';

export interface DatasetSpec {
  /** Path relative to the repository root. */
  file: string;
  target: string;
}

/** The UCI data sets shipped in `data/`. */
export const DATASETS: Readonly<Record<DatasetName, DatasetSpec>> = {
  letter: { file: 'data/letter.csv', target: 'lettr' },
  spam: { file: 'data/spam.csv', target: 'type' },
  satellite: { file: 'data/satellite.csv', target: 'classes' },
};

export const DATASET_NAMES = Object.keys(DATASETS) as DatasetName[];

/** A built-in data set by name, or one already loaded (`loadCsvDataset`, or built in code). */
export type DatasetSource = DatasetName | Dataset;

export function isDatasetName(name: string): name is DatasetName {
  return Object.hasOwn(DATASETS, name);
}

/** Cells read as a missing value (compared after trimming, case-insensitively). */
export const MISSING_TOKENS: readonly string[] = ['', 'na', 'n/a', 'nan', 'null', '?'];

/** More distinct text values than this in one column cannot be one-hot encoded sensibly. */
export const DEFAULT_MAX_CATEGORIES = 100;

export interface CsvDatasetOptions {
  /** @defaultValue the file name without `.csv` / `.gz` */
  name?: string;
  target: string;
  /** Columns to leave out. */
  drop?: readonly string[];
  /** A column that names the row: kept as `ids`, never a feature. */
  id?: string;
  /** `refuse`: a text column is an error. @defaultValue 'encode' */
  categorical?: 'encode' | 'refuse';
  /** `refuse`: a missing feature value is an error. @defaultValue 'impute' */
  missing?: 'impute' | 'refuse';
  /** @defaultValue DEFAULT_MAX_CATEGORIES */
  maxCategories?: number;
}

export async function loadDataset(name: DatasetName): Promise<Dataset> {
  const spec = DATASETS[name];
  return loadCsvDataset(resolve(repoRoot(), spec.file), { name, target: spec.target });
}

export async function resolveDataset(source: DatasetSource): Promise<Dataset> {
  return typeof source === 'string' ? loadDataset(source) : source;
}

/** A name for a data set file usable in model ids: `my data.csv.gz` gives `my-data`. */
export function datasetNameFromPath(path: string): string {
  const stem = basename(path)
    .replace(/\.gz$/i, '')
    .replace(/\.(csv|txt)$/i, '');
  const safe = stem.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '');
  return safe === '' ? 'dataset' : safe;
}

/** Reads a data file as text; gzip (by `.gz` or by its magic bytes) is unpacked. */
export async function readDataFile(path: string, what = 'data set'): Promise<string> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw new DatasetError(`cannot read ${what} at ${path}`, error);
  }
  if (path.toLowerCase().endsWith('.gz') || (bytes[0] === 0x1f && bytes[1] === 0x8b)) {
    try {
      bytes = gunzipSync(bytes);
    } catch (error) {
      throw new DatasetError(`${what} ${path} is not valid gzip`, error);
    }
  }
  return bytes.toString('utf8');
}

/** Loads a CSV with a header row (plain or gzip). */
export async function loadCsvDataset(path: string, options: CsvDatasetOptions): Promise<Dataset> {
  const name = options.name ?? datasetNameFromPath(path);
  return datasetFromCsv(await readDataFile(path, `data set ${name}`), { ...options, name });
}

const MAX_LISTED = 10;

type Fail = (message: string) => never;

export function datasetFromCsv(text: string, options: CsvDatasetOptions & { name: string }): Dataset {
  const name = options.name;
  const fail = (message: string): never => {
    throw new DatasetError(`data set ${name}: ${message}`);
  };
  // A byte-order mark would otherwise become part of the first column name.
  const [headerRow, ...parsed] = parseCsvRows(text.startsWith('\uFEFF') ? text.slice(1) : text);
  if (headerRow === undefined || parsed.length === 0) fail('has no rows');
  const layout = columnLayout(
    headerRow!.fields.map((h) => h.trim()),
    options,
    fail,
  );
  const { header, targetColumn, idColumn, featureColumns } = layout;
  const rows = usableRows(parsed, layout, options, fail);

  const columns: FeatureColumn[] = [];
  const X = rows.map(() => new Float64Array(featureColumns.length));
  featureColumns.forEach((column, j) => {
    const columnName = `"${header[column]}" (column ${column + 1})`;
    const set = (i: number, value: number): void => {
      X[i]![j] = value;
    };
    columns.push(readFeatureColumn({ rows, column, name: columnName, options, fail, set }));
  });

  const labels = rows.map((row) => row.fields[targetColumn]!);
  const classes = [...new Set(labels)].sort(byString);
  if (classes.length < 2) fail(`the target "${options.target}" has ${classes.length} class; classification needs at least 2`);
  const index = new Map(classes.map((c, i) => [c, i]));
  const y = Int32Array.from(labels, (label) => index.get(label)!);
  return {
    name,
    featureNames: featureColumns.map((i) => header[i]!),
    columns,
    classes,
    X,
    y,
    ...(idColumn < 0 ? {} : { ids: rows.map((row) => row.fields[idColumn]!.trim()) }),
  };
}

/** Which header column is the target, the id (-1 for none), and the features. */
interface ColumnLayout {
  header: string[];
  targetColumn: number;
  idColumn: number;
  featureColumns: number[];
}

function columnLayout(header: string[], options: CsvDatasetOptions, fail: Fail): ColumnLayout {
  const columnOf = (column: string, flag: string): number => {
    const i = header.indexOf(column);
    if (i < 0) fail(`has no ${flag} column "${column}" (columns: ${header.join(', ')})`);
    return i;
  };
  const duplicate = header.find((h, i) => header.indexOf(h) !== i);
  if (duplicate !== undefined) fail(`header names column "${duplicate}" twice`);
  const targetColumn = columnOf(options.target, 'target');
  const idColumn = options.id === undefined ? -1 : columnOf(options.id, 'id');
  const dropped = new Set((options.drop ?? []).map((d) => columnOf(d, '--drop')));
  if (dropped.has(targetColumn)) fail(`the target "${options.target}" cannot be dropped`);
  const featureColumns = header.map((_, i) => i).filter((i) => i !== targetColumn && i !== idColumn && !dropped.has(i));
  if (featureColumns.length === 0) fail('has no feature columns');
  return { header, targetColumn, idColumn, featureColumns };
}

/** The rows with every field and a target value, ids present and unique. */
function usableRows(parsed: readonly CsvRow[], layout: ColumnLayout, options: CsvDatasetOptions, fail: Fail): CsvRow[] {
  const { header, targetColumn, idColumn } = layout;
  // Bad rows are all reported at once, so a file is fixed in one go.
  const problems: string[] = [];
  const rows: CsvRow[] = [];
  for (const row of parsed) {
    if (row.fields.length !== header.length) {
      problems.push(`line ${row.line}: ${row.fields.length} fields, header has ${header.length}`);
    } else if (isMissing(row.fields[targetColumn]!)) {
      problems.push(`line ${row.line}: no value for the target "${options.target}"`);
    } else {
      rows.push(row);
    }
  }
  if (idColumn >= 0) {
    const seen = new Map<string, number>();
    for (const row of rows) {
      const id = row.fields[idColumn]!.trim();
      const earlier = seen.get(id);
      if (id === '') problems.push(`line ${row.line}: no value for the id "${options.id}"`);
      else if (earlier !== undefined) problems.push(`line ${row.line}: id "${id}" repeats line ${earlier}`);
      seen.set(id, row.line);
    }
  }
  if (problems.length > 0) fail(`${count(problems.length, 'bad row')}: ${listed(problems)}`);
  return rows;
}

/** One feature column to read; `set` receives each row's value. */
interface ColumnReading {
  rows: readonly CsvRow[];
  column: number;
  /** Names the column in messages. */
  name: string;
  options: CsvDatasetOptions;
  fail: Fail;
  set: (row: number, value: number) => void;
}

/** Reads one feature column as numbers or, when it holds text, as category codes. */
function readFeatureColumn(reading: ColumnReading): FeatureColumn {
  const { rows, column, name: columnName, options, fail, set } = reading;
  const numbers: number[] = [];
  const textLines: string[] = [];
  const missingLines: number[] = [];
  for (const row of rows) {
    const raw = row.fields[column]!.trim();
    if (isMissing(raw)) {
      numbers.push(Number.NaN);
      missingLines.push(row.line);
      continue;
    }
    const value = Number(raw);
    numbers.push(value);
    if (!Number.isFinite(value)) textLines.push(`line ${row.line} "${raw}"`);
  }
  if (missingLines.length > 0 && options.missing === 'refuse') {
    fail(`column ${columnName} has ${count(missingLines.length, 'missing value')}: ${listed(missingLines.map((l) => `line ${l}`))}`);
  }
  const present = rows.length - missingLines.length;
  if (textLines.length === 0) {
    rows.forEach((_, i) => {
      set(i, numbers[i]!);
    });
    return { kind: 'numeric', missing: missingLines.length };
  }
  // Mostly numbers with a few words is a typo or a missing-value code, not a category.
  if (textLines.length * 2 < present) {
    fail(
      `column ${columnName} is numeric but ${count(textLines.length, 'value')} ${textLines.length === 1 ? 'is not a number' : 'are not numbers'}: ${listed(textLines)}`,
    );
  }
  if (options.categorical === 'refuse') {
    fail(`column ${columnName} is not numeric (${listed(textLines)}); --drop it or encode it as numbers`);
  }
  return readCategories(reading, textLines, missingLines.length);
}

function readCategories(reading: ColumnReading, textLines: readonly string[], missing: number): FeatureColumn {
  const { rows, column, name: columnName, options, fail, set } = reading;
  const values = rows.map((row) => row.fields[column]!.trim());
  const categories = [...new Set(values.filter((v) => !isMissing(v)))].sort(byString);
  const maxCategories = options.maxCategories ?? DEFAULT_MAX_CATEGORIES;
  if (categories.length > maxCategories) {
    fail(
      `column ${columnName} has ${categories.length} distinct text values (${listed(textLines, 3)}), more than ${maxCategories} ` +
        `to one-hot encode; --drop it, or --id it if it names the row`,
    );
  }
  const code = new Map(categories.map((c, k) => [c, k]));
  values.forEach((v, i) => {
    set(i, isMissing(v) ? Number.NaN : code.get(v)!);
  });
  return { kind: 'categorical', categories, missing };
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

function isMissing(raw: string): boolean {
  return MISSING_TOKENS.includes(raw.trim().toLowerCase());
}

function listed(items: readonly string[], max = MAX_LISTED): string {
  return items.length <= max ? items.join('; ') : `${items.slice(0, max).join('; ')}; and ${items.length - max} more`;
}

export function byString(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
