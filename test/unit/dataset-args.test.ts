import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { datasetFromArgs } from '../../services/cli/dataset-args.js';
import { ConfigError } from '../../services/shared/errors.js';

describe('train and select data options', () => {
  it('takes a built-in name, or a CSV with its target, drop and id columns', async () => {
    expect(await datasetFromArgs({})).toBe('letter');
    expect(await datasetFromArgs({ dataset: 'satellite' })).toBe('satellite');
    const dir = await mkdtemp(join(tmpdir(), 'dataset-args-'));
    try {
      const path = join(dir, 'orders.csv');
      await writeFile(path, 'order,when,amount,kind,returned\no1,mon,10,a,no\no2,tue,,b,yes\no3,mon,7,a,no\n');
      const data = await datasetFromArgs({ csv: path, target: 'returned', drop: ['when'], id: 'order' });
      expect(typeof data === 'string' ? data : [data.name, data.featureNames, data.ids]).toEqual(['orders', ['amount', 'kind'], ['o1', 'o2', 'o3']]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses options that do not go together, with a message saying what to do', async () => {
    await expect(datasetFromArgs({ dataset: 'iris' })).rejects.toThrow(/not one of letter, spam, satellite; for your own data use --csv/);
    await expect(datasetFromArgs({ csv: 'x.csv' })).rejects.toThrow(/--csv needs --target/);
    await expect(datasetFromArgs({ target: 'y' })).rejects.toThrow(ConfigError);
    await expect(datasetFromArgs({ csv: 'x.csv', target: 'y', dataset: 'spam' })).rejects.toThrow(/not both/);
  });
});
