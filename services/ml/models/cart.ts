import { ModelParamsError } from '../errors.js';
import { type Rng, randomInt } from '../random.js';
import { expectFiniteArray, expectIntegerArray, expectRecord } from './params-check.js';

/**
 * CART classification trees (gini impurity), shared by the decision tree and the random forest.
 *
 * Growth follows scikit-learn: binary splits `x[feature] <= threshold` at midpoints between
 * consecutive distinct values, the split maximising the weighted gini decrease, features visited in
 * random order until `maxFeatures` non-constant ones were evaluated. Rows carry integer weights so a
 * bootstrap sample is a weight vector rather than a copy of the data.
 */

/** A grown tree as plain arrays, nodes in preorder (node 0 is the root). */
export interface TreeParams {
  /** Split feature per node; -1 marks a leaf. */
  feature: number[];
  threshold: number[];
  /** Child node indices; -1 for leaves. */
  left: number[];
  right: number[];
  /** Leaf class weights, sparse: node i owns entries valueStart[i] .. valueStart[i + 1] - 1. */
  valueStart: number[];
  valueClass: number[];
  valueWeight: number[];
}

export interface TreeGrowthOptions {
  maxDepth: number;
  /** Non-constant features evaluated per split (all of them for a plain tree). */
  maxFeatures: number;
  minSamplesSplit: number;
}

/** Training data laid out for growing many trees: columns plus per-feature row orders, sorted once. */
export interface PreparedData {
  nRows: number;
  nFeatures: number;
  columns: Float64Array[];
  labels: Int32Array;
  sortedRows: Int32Array[];
}

export function prepareData(X: readonly ArrayLike<number>[], y: ArrayLike<number>, nFeatures: number): PreparedData {
  const nRows = X.length;
  const columns: Float64Array[] = [];
  const sortedRows: Int32Array[] = [];
  for (let f = 0; f < nFeatures; f++) {
    const column = Float64Array.from(X, (row) => row[f]!);
    const order = Int32Array.from({ length: nRows }, (_, i) => i);
    order.sort((a, b) => column[a]! - column[b]! || a - b);
    columns.push(column);
    sortedRows.push(order);
  }
  return { nRows, nFeatures, columns, labels: Int32Array.from(y), sortedRows };
}

/** Grows one tree on the rows with positive `weights`. */
export function growTree(data: PreparedData, weights: Float64Array, nClasses: number, options: TreeGrowthOptions, rng: Rng): TreeParams {
  return new TreeGrower(data, weights, nClasses, options, rng).grow();
}

/** The class weights of one node's rows. */
interface NodeClasses {
  total: number;
  /** Sum of the squared class weights. */
  sumSquares: number;
  /** Classes with a positive weight. */
  nonEmpty: number;
}

/** A split of a node's segment: rows up to `position` (in `feature`'s order) go left. */
interface Split {
  score: number;
  feature: number;
  position: number;
  threshold: number;
}

/**
 * The state of growing one tree. Every node owns a segment `start .. end - 1` of each feature's row
 * order; splitting a node partitions its segments in place, so children own sub-segments.
 */
class TreeGrower {
  readonly tree: TreeParams = { feature: [], threshold: [], left: [], right: [], valueStart: [], valueClass: [], valueWeight: [] };
  /** Each feature's row order restricted to this tree's rows. */
  private readonly rows: Int32Array[];
  private readonly goesLeft: Uint8Array;
  private readonly buffer: Int32Array;
  private readonly featureOrder: Int32Array;
  private readonly nodeWeight: Float64Array;
  private readonly leftWeight: Float64Array;
  private readonly rightWeight: Float64Array;

  constructor(
    private readonly data: PreparedData,
    private readonly weights: Float64Array,
    private readonly nClasses: number,
    private readonly options: TreeGrowthOptions,
    private readonly rng: Rng,
  ) {
    // Node segments stay sorted because partitioning is stable.
    this.rows = data.sortedRows.map((order) => order.filter((r) => weights[r]! > 0));
    this.goesLeft = new Uint8Array(data.nRows);
    this.buffer = new Int32Array(this.rows[0]!.length);
    this.featureOrder = Int32Array.from({ length: data.nFeatures }, (_, f) => f);
    this.nodeWeight = new Float64Array(nClasses);
    this.leftWeight = new Float64Array(nClasses);
    this.rightWeight = new Float64Array(nClasses);
  }

  grow(): TreeParams {
    this.build(0, this.rows[0]!.length, 0);
    this.tree.valueStart.push(this.tree.valueClass.length);
    return this.tree;
  }

  /** Grows the subtree of the rows in segment `start .. end - 1`; returns its root node. */
  private build(start: number, end: number, depth: number): number {
    const { tree, options } = this;
    const node = tree.feature.length;
    tree.feature.push(-1);
    tree.threshold.push(0);
    tree.left.push(-1);
    tree.right.push(-1);
    tree.valueStart.push(tree.valueClass.length);

    const classes = this.countClasses(start, end);
    if (depth >= options.maxDepth || end - start < options.minSamplesSplit || classes.nonEmpty <= 1) return this.makeLeaf(node);
    const split = this.bestSplit(start, end, classes);
    if (split === undefined) return this.makeLeaf(node);

    this.partition(start, end, split);
    const middle = split.position + 1;
    tree.feature[node] = split.feature;
    tree.threshold[node] = split.threshold;
    tree.left[node] = this.build(start, middle, depth + 1);
    tree.right[node] = this.build(middle, end, depth + 1);
    return node;
  }

  /** Fills `nodeWeight` with the class weights of the segment. */
  private countClasses(start: number, end: number): NodeClasses {
    const { nodeWeight, weights } = this;
    const labels = this.data.labels;
    nodeWeight.fill(0);
    let total = 0;
    const anyOrder = this.rows[0]!;
    for (let p = start; p < end; p++) {
      const r = anyOrder[p]!;
      nodeWeight[labels[r]!] = nodeWeight[labels[r]!]! + weights[r]!;
      total += weights[r]!;
    }
    let sumSquares = 0;
    let nonEmpty = 0;
    for (let c = 0; c < this.nClasses; c++) {
      sumSquares += nodeWeight[c]! * nodeWeight[c]!;
      if (nodeWeight[c]! > 0) nonEmpty++;
    }
    return { total, sumSquares, nonEmpty };
  }

  /** Makes `node` a leaf holding the class weights `countClasses` left in `nodeWeight`. */
  private makeLeaf(node: number): number {
    for (let c = 0; c < this.nClasses; c++) {
      if (this.nodeWeight[c]! > 0) {
        this.tree.valueClass.push(c);
        this.tree.valueWeight.push(this.nodeWeight[c]!);
      }
    }
    return node;
  }

  /**
   * Visits features in random order until `maxFeatures` non-constant ones were scanned; undefined
   * when every feature is constant on the segment.
   */
  private bestSplit(start: number, end: number, classes: NodeClasses): Split | undefined {
    const { featureOrder, rng } = this;
    const { nFeatures, columns } = this.data;
    const best: Split = { score: -Infinity, feature: -1, position: -1, threshold: 0 };
    let visited = 0;
    for (let t = 0; t < nFeatures && visited < this.options.maxFeatures; t++) {
      const pick = t + randomInt(rng, nFeatures - t);
      const f = featureOrder[pick]!;
      featureOrder[pick] = featureOrder[t]!;
      featureOrder[t] = f;

      const segment = this.rows[f]!;
      const column = columns[f]!;
      if (column[segment[start]!]! === column[segment[end - 1]!]!) continue;
      visited++;
      this.scanFeature(f, start, end, classes, best);
    }
    return best.feature < 0 ? undefined : best;
  }

  /**
   * Updates `best` with the best split of the segment on feature `f`. It maximises
   * sum_L/W_L + sum_R/W_R of squared class weights, which is the same as minimising
   * W_L * gini_L + W_R * gini_R; kept up to date in O(1) per row while scanning.
   */
  private scanFeature(f: number, start: number, end: number, classes: NodeClasses, best: Split): void {
    const { leftWeight, rightWeight, weights } = this;
    const labels = this.data.labels;
    const segment = this.rows[f]!;
    const column = this.data.columns[f]!;
    leftWeight.fill(0);
    rightWeight.set(this.nodeWeight);
    let leftSquares = 0;
    let rightSquares = classes.sumSquares;
    let leftTotal = 0;
    let rightTotal = classes.total;
    for (let p = start; p < end - 1; p++) {
      const r = segment[p]!;
      const w = weights[r]!;
      const c = labels[r]!;
      const l = leftWeight[c]!;
      leftSquares += w * (2 * l + w);
      leftWeight[c] = l + w;
      const rw = rightWeight[c]!;
      rightSquares += w * (w - 2 * rw);
      rightWeight[c] = rw - w;
      leftTotal += w;
      rightTotal -= w;
      const value = column[r]!;
      const next = column[segment[p + 1]!]!;
      if (value < next) {
        const score = leftSquares / leftTotal + rightSquares / rightTotal;
        if (score > best.score) {
          best.score = score;
          best.feature = f;
          best.position = p;
          const mid = (value + next) / 2;
          best.threshold = mid === next ? value : mid;
        }
      }
    }
  }

  /** Partitions every feature's segment, stably, into the rows that go left and those that go right. */
  private partition(start: number, end: number, split: Split): void {
    const { goesLeft, buffer } = this;
    const splitRows = this.rows[split.feature]!;
    for (let p = start; p < end; p++) goesLeft[splitRows[p]!] = p <= split.position ? 1 : 0;
    for (const segment of this.rows) {
      let write = start;
      let spill = 0;
      for (let p = start; p < end; p++) {
        const r = segment[p]!;
        if (goesLeft[r] === 1) segment[write++] = r;
        else buffer[spill++] = r;
      }
      segment.set(buffer.subarray(0, spill), write);
    }
  }
}

/** A tree in typed arrays with leaf probabilities precomputed, for fast prediction. */
export class CompiledTree {
  private readonly feature: Int32Array;
  private readonly threshold: Float64Array;
  private readonly left: Int32Array;
  private readonly right: Int32Array;
  private readonly valueStart: Int32Array;
  private readonly valueClass: Int32Array;
  private readonly valueProba: Float64Array;

  constructor(params: TreeParams) {
    this.feature = Int32Array.from(params.feature);
    this.threshold = Float64Array.from(params.threshold);
    this.left = Int32Array.from(params.left);
    this.right = Int32Array.from(params.right);
    this.valueStart = Int32Array.from(params.valueStart);
    this.valueClass = Int32Array.from(params.valueClass);
    this.valueProba = new Float64Array(params.valueWeight.length);
    for (let node = 0; node < this.feature.length; node++) {
      const from = this.valueStart[node]!;
      const to = this.valueStart[node + 1]!;
      let total = 0;
      for (let e = from; e < to; e++) total += params.valueWeight[e]!;
      for (let e = from; e < to; e++) this.valueProba[e] = params.valueWeight[e]! / total;
    }
  }

  /** Adds the class distribution of the leaf that `x` falls into to `out`. */
  addProba(x: ArrayLike<number>, out: Float64Array): void {
    let node = 0;
    for (let f = this.feature[0]!; f >= 0; f = this.feature[node]!) {
      node = x[f]! <= this.threshold[node]! ? this.left[node]! : this.right[node]!;
    }
    for (let e = this.valueStart[node]!; e < this.valueStart[node + 1]!; e++) {
      out[this.valueClass[e]!] = out[this.valueClass[e]!]! + this.valueProba[e]!;
    }
  }
}

/** Checks a tree read from JSON: every path must end in a leaf with a non-empty class distribution. */
export function treeParamsFromJSON(value: unknown, nClasses: number, nFeatures: number, what: string): TreeParams {
  const params = expectRecord(value, what);
  const feature = expectIntegerArray(params.feature, `${what}.feature`, -1, nFeatures - 1);
  const nNodes = feature.length;
  if (nNodes === 0) throw new ModelParamsError(`${what} has no nodes`);
  const threshold = expectFiniteArray(params.threshold, `${what}.threshold`, nNodes);
  const left = expectIntegerArray(params.left, `${what}.left`, -1, nNodes - 1, nNodes);
  const right = expectIntegerArray(params.right, `${what}.right`, -1, nNodes - 1, nNodes);
  const valueClass = expectIntegerArray(params.valueClass, `${what}.valueClass`, 0, nClasses - 1);
  const valueWeight = expectFiniteArray(params.valueWeight, `${what}.valueWeight`, valueClass.length);
  const valueStart = expectIntegerArray(params.valueStart, `${what}.valueStart`, 0, valueClass.length, nNodes + 1);
  if (valueStart[0] !== 0 || valueStart[nNodes] !== valueClass.length) {
    throw new ModelParamsError(`${what}.valueStart does not cover the leaf values`);
  }
  if (valueWeight.some((w) => w < 0)) throw new ModelParamsError(`${what}.valueWeight holds a negative weight`);
  for (let node = 0; node < nNodes; node++) {
    const from = valueStart[node]!;
    const to = valueStart[node + 1]!;
    if (to < from) throw new ModelParamsError(`${what}.valueStart is not non-decreasing`);
    if (feature[node]! >= 0) {
      // Children after their parent rules out cycles, so every walk reaches a leaf.
      if (left[node]! <= node || right[node]! <= node) throw new ModelParamsError(`${what} node ${node} has bad children`);
      if (to !== from) throw new ModelParamsError(`${what} split node ${node} carries leaf values`);
    } else {
      if (left[node] !== -1 || right[node] !== -1) throw new ModelParamsError(`${what} leaf ${node} has children`);
      let total = 0;
      for (let e = from; e < to; e++) total += valueWeight[e]!;
      if (!(total > 0)) throw new ModelParamsError(`${what} leaf ${node} has no class weight`);
    }
  }
  return { feature, threshold, left, right, valueStart, valueClass, valueWeight };
}
