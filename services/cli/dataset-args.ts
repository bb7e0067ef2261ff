import { DATASET_NAMES, type DatasetName, type DatasetSource, isDatasetName, loadCsvDataset } from '../ml/dataset.js';
import { ConfigError } from '../shared/errors.js';

/** The data set options `train` and `select` share. */
export interface DatasetArgs {
  dataset?: string | undefined;
  csv?: string | undefined;
  target?: string | undefined;
  drop?: string[] | undefined;
  id?: string | undefined;
  name?: string | undefined;
}

export const DATASET_USAGE = `--dataset ${DATASET_NAMES.join('|')} | --csv PATH --target COLUMN [--drop COLUMN ...] [--id COLUMN] [--name NAME]`;

export function builtinDataset(value: string | undefined): DatasetName {
  const name = value ?? 'letter';
  if (!isDatasetName(name))
    throw new ConfigError(`--dataset: "${name}" is not one of ${DATASET_NAMES.join(', ')}; for your own data use --csv PATH --target COLUMN`);
  return name;
}

/** A built-in data set by `--dataset`, or a CSV (plain or gzip) by `--csv` and `--target`, loaded. */
export async function datasetFromArgs(values: DatasetArgs): Promise<DatasetSource> {
  if (values.csv === undefined) {
    for (const flag of ['target', 'drop', 'id', 'name'] as const) {
      if (values[flag] !== undefined) throw new ConfigError(`--${flag} goes with --csv`);
    }
    return builtinDataset(values.dataset);
  }
  if (values.dataset !== undefined) throw new ConfigError('give --dataset or --csv, not both');
  if (values.target === undefined || values.target === '') throw new ConfigError('--csv needs --target COLUMN (the column holding the class label)');
  return loadCsvDataset(values.csv, {
    target: values.target,
    ...(values.name === undefined ? {} : { name: values.name }),
    ...(values.drop === undefined ? {} : { drop: values.drop }),
    ...(values.id === undefined ? {} : { id: values.id }),
  });
}

export function datasetName(source: DatasetSource): string {
  return typeof source === 'string' ? source : source.name;
}
