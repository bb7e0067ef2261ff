import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { repoRoot } from '../shared/repo-root.js';
import { parseCsv } from './csv.js';
import { DatasetError } from './errors.js';

/** A classification data set: numeric features and class indices into the sorted `classes`. */
export interface Dataset {
  name: string;
  featureNames: string[];
  /** Sorted in plain string order, as scikit-learn's LabelEncoder sorts, so class indices match across tools. */
  classes: string[];
  X: Float64Array[];
  y: Int32Array;
}

export type DatasetName = 'letter' | 'spam';

export interface DatasetSpec {
  /** Path relative to the repository root. */
  file: string;
  target: string;
}

/** The UCI data sets shipped in `data/`. */
export const DATASETS: Readonly<Record<DatasetName, DatasetSpec>> = {
  letter: { file: 'data/letter.csv', target: 'lettr' },
  spam: { file: 'data/spam.csv', target: 'type' },
};

export function isDatasetName(name: string): name is DatasetName {
  return Object.hasOwn(DATASETS, name);
}

export async function loadDataset(name: DatasetName): Promise<Dataset> {
  const spec = DATASETS[name];
  return loadCsvDataset(resolve(repoRoot(), spec.file), { name, target: spec.target });
}

/** Loads a CSV with a header row; every column but `target` must be numeric. */
export async function loadCsvDataset(path: string, options: { name: string; target: string }): Promise<Dataset> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new DatasetError(`cannot read data set ${options.name} at ${path}`, error);
  }
  return datasetFromCsv(text, options);
}

export function datasetFromCsv(text: string, options: { name: string; target: string }): Dataset {
  // A byte-order mark would otherwise become part of the first column name.
  const [header, ...rows] = parseCsv(text.startsWith('\uFEFF') ? text.slice(1) : text);
  if (header === undefined || rows.length === 0) throw new DatasetError(`data set ${options.name} has no rows`);
  const targetColumn = header.indexOf(options.target);
  if (targetColumn < 0) throw new DatasetError(`data set ${options.name} has no target column "${options.target}"`);
  const featureColumns = header.map((_, i) => i).filter((i) => i !== targetColumn);
  if (featureColumns.length === 0) throw new DatasetError(`data set ${options.name} has no feature columns`);

  const labels: string[] = [];
  const X: Float64Array[] = [];
  rows.forEach((row, r) => {
    const line = r + 2;
    if (row.length !== header.length) {
      throw new DatasetError(`data set ${options.name} line ${line}: ${row.length} fields, header has ${header.length}`);
    }
    const x = new Float64Array(featureColumns.length);
    featureColumns.forEach((column, j) => {
      const raw = row[column]!.trim();
      const value = raw === '' ? Number.NaN : Number(raw);
      if (!Number.isFinite(value)) {
        throw new DatasetError(`data set ${options.name} line ${line}: "${header[column]}" is not a finite number ("${raw}")`);
      }
      x[j] = value;
    });
    X.push(x);
    labels.push(row[targetColumn]!);
  });

  const classes = [...new Set(labels)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const index = new Map(classes.map((c, i) => [c, i]));
  const y = Int32Array.from(labels, (label) => index.get(label)!);
  return { name: options.name, featureNames: featureColumns.map((i) => header[i]!), classes, X, y };
}
