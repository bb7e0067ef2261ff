import { describe, expect, it } from 'vitest';
import { parseCsv } from '../../services/ml/csv.js';
import { DATASETS, datasetFromCsv, loadCsvDataset, loadDataset } from '../../services/ml/dataset.js';
import { repoRoot } from '../../services/shared/repo-root.js';
import { DatasetError } from '../../services/ml/errors.js';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

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
    expect(datasetFromCsv('\uFEFFy,a\n"k",1\n"j",2\n', { name: 't', target: 'y' }).featureNames).toEqual(['a']);
  });

  it('rejects a missing target, ragged rows and stray words in a numeric column, with their lines and columns', () => {
    expect(() => datasetFromCsv('a,b\n1,2\n', { name: 't', target: 'y' })).toThrow(/no target column "y"/);
    expect(() => datasetFromCsv('a,y\n1,2,3\n1,2\n', { name: 't', target: 'y' })).toThrow(/line 2: 3 fields/);
    expect(() => datasetFromCsv('a,y\n1,p\n2,\n3,"x\ny"\n4,q,5\n', { name: 't', target: 'y' })).toThrow(
      // The quoted line break moves the last row to line 6.
      /2 bad rows: line 3: no value for the target "y"; line 6: 3 fields, header has 2/,
    );
    expect(() => datasetFromCsv('y,a\np,1\nq,2\np,3x\nq,4\n', { name: 't', target: 'y' })).toThrow(
      /column "a" \(column 2\) is numeric but 1 value is not a number: line 4 "3x"/,
    );
    expect(() => datasetFromCsv('a,y\n', { name: 't', target: 'y' })).toThrow(/no rows/);
    expect(() => datasetFromCsv('a,y\n1,p\n2,p\n', { name: 't', target: 'y' })).toThrow(/at least 2/);
    expect(() => datasetFromCsv('a,a,y\n1,2,p\n', { name: 't', target: 'y' })).toThrow(/"a" twice/);
  });

  it('reads missing values as NaN and text columns as category codes, or refuses them when asked', () => {
    const text = 'id,colour,size,y\nr1,red,1,p\nr2,blue,NA,q\nr3,,3,p\nr4,red,?,q\n';
    const d = datasetFromCsv(text, { name: 't', target: 'y', id: 'id' });
    expect(d.featureNames).toEqual(['colour', 'size']);
    expect(d.ids).toEqual(['r1', 'r2', 'r3', 'r4']);
    expect(d.columns).toEqual([
      { kind: 'categorical', categories: ['blue', 'red'], missing: 1 },
      { kind: 'numeric', missing: 2 },
    ]);
    expect(d.X.map((x) => Array.from(x))).toEqual([
      [1, 1],
      [0, NaN],
      [NaN, 3],
      [1, NaN],
    ]);
    expect(() => datasetFromCsv(text, { name: 't', target: 'y', id: 'id', missing: 'refuse' })).toThrow(
      /column "colour" \(column 2\) has 1 missing value: line 4/,
    );
    expect(() => datasetFromCsv(text, { name: 't', target: 'y', id: 'id', categorical: 'refuse' })).toThrow(
      /column "colour" \(column 2\) is not numeric \(line 2 "red"; line 3 "blue"; line 5 "red"\)/,
    );
    // A text column without an --id is refused once it has too many values to one-hot encode.
    expect(() => datasetFromCsv(text, { name: 't', target: 'y', maxCategories: 3 })).toThrow(
      /column "id" \(column 1\) has 4 distinct text values.*--drop it, or --id it/,
    );
    expect(datasetFromCsv(text, { name: 't', target: 'y', drop: ['id', 'colour'] }).featureNames).toEqual(['size']);
    expect(() => datasetFromCsv(text, { name: 't', target: 'y', drop: ['nope'] })).toThrow(/no --drop column "nope"/);
  });

  it('loads gzip by extension or by its magic bytes, and names the data set after the file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dataset-'));
    try {
      const text = 'f1,label\n1,a\n2,b\n';
      await writeFile(join(dir, 'my data.csv.gz'), gzipSync(text));
      await writeFile(join(dir, 'packed.csv'), gzipSync(text));
      const a = await loadCsvDataset(join(dir, 'my data.csv.gz'), { target: 'label' });
      const b = await loadCsvDataset(join(dir, 'packed.csv'), { target: 'label' });
      expect(a.name).toBe('my-data');
      expect(b.name).toBe('packed');
      expect(a.X).toEqual(b.X);
      expect(a.classes).toEqual(['a', 'b']);
      await writeFile(join(dir, 'broken.csv.gz'), 'not gzip');
      await expect(loadCsvDataset(join(dir, 'broken.csv.gz'), { target: 'label' })).rejects.toThrow(/not valid gzip/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('loads the satellite data set', async () => {
    const satellite = await loadDataset('satellite');
    expect(satellite.X).toHaveLength(6435);
    expect(satellite.featureNames).toHaveLength(36);
    expect(satellite.classes).toHaveLength(6);
    expect(satellite.columns.every((c) => c.kind === 'numeric' && c.missing === 0)).toBe(true);
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
