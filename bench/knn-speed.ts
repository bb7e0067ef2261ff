import { loadavg } from 'node:os';
import { readManifest } from '../services/cli/training.js';
import { loadArtifact } from '../services/ml/artifact.js';
import { loadDataset } from '../services/ml/dataset.js';
import { scanNearest } from '../services/ml/models/knn-scan.js';
import { Standardiser } from '../services/ml/models/standardiser.js';
import { ConfigError, describeError } from '../services/shared/errors.js';

/**
 * `node dist/bench/knn-speed.js [--repeat N]`: CPU microseconds per k-NN prediction on the letter
 * test rows, the served model (k-d tree) against the scan of every row it replaced, in one process
 * and alternating, so a busy machine slows both alike. Needs `train` first.
 */
const say = (line: string): void => void process.stdout.write(`${line}\n`);

async function main(argv: string[]): Promise<void> {
  const repeat = Number(argv[argv.indexOf('--repeat') + 1] ?? 3) || 3;
  const manifest = await readManifest('letter');
  const m = manifest?.models.find((x) => x.family === 'knn');
  if (manifest === undefined || m === undefined) throw new ConfigError('no trained letter k-NN: run `train` first');
  const { model } = await loadArtifact(m.artifactPath);
  const params = model.toJSON();
  if (params.family !== 'knn') throw new ConfigError(`${m.artifactPath} is no k-NN`);
  const standardiser = new Standardiser(params.standardiser);
  const nFeatures = params.nFeatures;
  const data = new Float64Array(params.X.length);
  for (let i = 0; i < params.y.length; i++)
    standardiser.transform(params.X.slice(i * nFeatures, (i + 1) * nFeatures), data.subarray(i * nFeatures, (i + 1) * nFeatures));
  const letter = await loadDataset('letter');
  const rows = manifest.split.test.map((i) => Array.from(letter.X[i]!));
  const cpuMicrosPerRow = (predict: (row: number[]) => unknown): number => {
    const start = process.cpuUsage();
    for (const row of rows) predict(row);
    const used = process.cpuUsage(start);
    return (used.user + used.system) / rows.length;
  };
  const scan: number[] = [];
  const tree: number[] = [];
  for (let r = 0; r < repeat; r++) {
    scan.push(cpuMicrosPerRow((row) => scanNearest(data, nFeatures, standardiser.transform(row), params.k)));
    tree.push(cpuMicrosPerRow((row) => model.predictProba(row)));
  }
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
  say(
    `k-NN on ${rows.length} letter test rows (${params.y.length} training rows, k = ${params.k}), CPU us per prediction, ${repeat} runs, load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
  say(`  scan of every row: median ${median(scan).toFixed(1)} (${scan.map((x) => x.toFixed(1)).join(', ')})`);
  say(`  k-d tree:          median ${median(tree).toFixed(1)} (${tree.map((x) => x.toFixed(1)).join(', ')}), ${(median(scan) / median(tree)).toFixed(2)}x`);
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`knn-speed: ${describeError(error)}\n`);
    process.exit(1);
  },
);
