import { describe, expect, it } from 'vitest';
import { parseCsv } from '../../services/ml/csv.js';
import { DATASETS, datasetFromCsv, loadDataset } from '../../services/ml/dataset.js';
import { repoRoot } from '../../services/shared/repo-root.js';
import { DatasetError } from '../../services/ml/errors.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

describe('CSV parser', () => {
  it('handles quoted fields with commas, escaped quotes and line breaks', () => {
    const text = 'a,"b,c","say ""hi"""\r\n1,"two\nlines",3\n\n"",x,\n';
    expect(parseCsv(text)).toEqual([
      ['a', 'b,c', 'say "hi"'],
      ['1', 'two\nlines', '3'],
      ['', 'x', ''],
    ]);
  });

  it('accepts a last line without a line break', () => {
    expect(parseCsv('h1,h2\n1,2')).toEqual([
      ['h1', 'h2'],
      ['1', '2'],
    ]);
  });

  it('rejects broken quoting', () => {
    expect(() => parseCsv('a,"unterminated\n')).toThrow(DatasetError);
    expect(() => parseCsv('a,"x"y\n')).toThrow(/after closing quote/);
    expect(() => parseCsv('a,b"c\n')).toThrow(/quote inside/);
  });
});

describe('data sets', () => {
  it('encodes the target as indices into the sorted classes, wherever the column sits', () => {
    const d = datasetFromCsv('"f1","label","f2"\n1,"b",2\n3,"a",4.5\n-1,"c",0\n5,"a",6\n', { name: 'toy', target: 'label' });
    expect(d.featureNames).toEqual(['f1', 'f2']);
    expect(d.classes).toEqual(['a', 'b', 'c']);
    expect(Array.from(d.y)).toEqual([1, 0, 2, 0]);
    expect(d.X.map((x) => Array.from(x))).toEqual([
      [1, 2],
      [3, 4.5],
      [-1, 0],
      [5, 6],
    ]);
  });

  it('ignores a byte-order mark before the header', () => {
    expect(datasetFromCsv('\uFEFFy,a\n"k",1\n', { name: 't', target: 'y' }).featureNames).toEqual(['a']);
  });

  it('rejects a missing target, ragged rows and non-numeric features', () => {
    expect(() => datasetFromCsv('a,b\n1,2\n', { name: 't', target: 'y' })).toThrow(/no target column "y"/);
    expect(() => datasetFromCsv('a,y\n1,2,3\n', { name: 't', target: 'y' })).toThrow(/line 2: 3 fields/);
    expect(() => datasetFromCsv('a,y\nx,1\n', { name: 't', target: 'y' })).toThrow(/"a" is not a finite number/);
    expect(() => datasetFromCsv('a,y\n,1\n', { name: 't', target: 'y' })).toThrow(DatasetError);
    expect(() => datasetFromCsv('a,y\n', { name: 't', target: 'y' })).toThrow(/no rows/);
  });

  it('finds the repository root from the module location', () => {
    const root = repoRoot();
    expect(existsSync(join(root, 'package.json'))).toBe(true);
    for (const spec of Object.values(DATASETS)) expect(existsSync(join(root, spec.file))).toBe(true);
  });

  it('loads the spam data set', async () => {
    const spam = await loadDataset('spam');
    expect(spam.X).toHaveLength(4601);
    expect(spam.featureNames).toHaveLength(57);
    expect(spam.featureNames).not.toContain('type');
    expect(spam.classes).toEqual(['nonspam', 'spam']);
    expect(Array.from(spam.y).filter((c) => c === 1)).toHaveLength(1813);
    expect(spam.X[0]![1]).toBe(0.64);
  });

  it('loads the letter data set', async () => {
    const letter = await loadDataset('letter');
    expect(letter.X).toHaveLength(20000);
    expect(letter.featureNames).toHaveLength(16);
    expect(letter.classes).toEqual([...'ABCDEFGHIJKLMNOPQRSTUVWXYZ']);
    // First data row: "T",2,8,3,5,1,8,13,0,6,6,10,8,0,8,0,8
    expect(letter.classes[letter.y[0]!]).toBe('T');
    expect(Array.from(letter.X[0]!)).toEqual([2, 8, 3, 5, 1, 8, 13, 0, 6, 6, 10, 8, 0, 8, 0, 8]);
  });
});
