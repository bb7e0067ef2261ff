import { principalAxes } from './principal-axes.js';

/** Rows per leaf: small enough to prune well in 16 dimensions, large enough to keep the tree shallow. */
const LEAF_SIZE = 16;

/**
 * A box may be skipped only when its distance exceeds the k-th best by more than this share: box
 * distances are taken in rotated coordinates, whose rounding differs from a row's own distance by
 * far less (about 1e-14 relative), so no row that ties or beats the k-th best is ever skipped.
 */
const PRUNE_SLACK = 1e-9;

/**
 * Exact k-nearest-neighbour search over fixed rows (squared Euclidean distance), the same answer as
 * a scan of every row: the k rows smallest by (distance, row index), so a tie in distance goes to
 * the earlier row. Each row's distance is summed feature by feature in feature order, the same
 * floating-point operations as a scan, so ties are ties here too. The tree itself is built on the
 * rows rotated onto their principal axes (a rotation keeps distances), so it splits along the
 * directions the data varies in and prunes far more than on raw features; its boxes only decide
 * which rows to look at, with a margin (PRUNE_SLACK), never a row's distance.
 */
export class KdTree {
  readonly size: number;
  /** Rows in tree order (each leaf's rows contiguous), row-major. */
  private readonly points: Float64Array;
  /** The same rows rotated onto the principal axes. */
  private readonly rotatedPoints: Float64Array;
  /** Original row index of each position in `points`. */
  private readonly rowOf: Int32Array;
  private readonly start: number[] = [];
  private readonly end: number[] = [];
  private readonly left: number[] = [];
  private readonly right: number[] = [];
  /** Per inner node: the rotated axis it splits on, its left rows' highest and right rows' lowest value there. */
  private readonly axis: number[] = [];
  private readonly leftMax: number[] = [];
  private readonly rightMin: number[] = [];
  /** Per axis, how far the region being searched lies from the query along it (visit). */
  private readonly offsets: Float64Array;
  /** Per node, the lowest and highest value of each rotated axis over its rows. */
  private lo: Float64Array = new Float64Array(0);
  private hi: Float64Array = new Float64Array(0);
  /** Principal axes as rows (principal-axes.ts). */
  private readonly axes: Float64Array;
  // Search state, reused across queries (searches are synchronous).
  private query: ArrayLike<number> = [];
  private readonly rotatedQuery: Float64Array;
  private k = 0;
  private count = 0;
  private bestDistance: Float64Array = new Float64Array(0);
  private bestRow: Int32Array = new Int32Array(0);

  constructor(
    data: Float64Array,
    private readonly nFeatures: number,
  ) {
    this.size = data.length / nFeatures;
    const order = Int32Array.from({ length: this.size }, (_, i) => i);
    const lo: number[] = [];
    const hi: number[] = [];
    this.axes = principalAxes(data, nFeatures);
    this.rotatedQuery = new Float64Array(nFeatures);
    this.offsets = new Float64Array(nFeatures);
    const rotated = new Float64Array(data.length);
    for (let i = 0; i < this.size; i++) this.rotate(data.subarray(i * nFeatures, (i + 1) * nFeatures), rotated.subarray(i * nFeatures, (i + 1) * nFeatures));
    this.build(rotated, order, 0, this.size, lo, hi);
    this.lo = Float64Array.from(lo);
    this.hi = Float64Array.from(hi);
    this.rowOf = order;
    this.points = new Float64Array(data.length);
    this.rotatedPoints = new Float64Array(data.length);
    for (let p = 0; p < this.size; p++) {
      const from = order[p]! * nFeatures;
      this.points.set(data.subarray(from, from + nFeatures), p * nFeatures);
      this.rotatedPoints.set(rotated.subarray(from, from + nFeatures), p * nFeatures);
    }
  }

  /**
   * The k nearest rows to `query`, nearest first (ties: earlier row first), written to `rows` and
   * their squared distances to `distances` (both at least k long); returns how many were found.
   */
  nearest(query: ArrayLike<number>, k: number, rows: Int32Array, distances: Float64Array): number {
    this.query = query;
    this.rotate(query, this.rotatedQuery);
    this.k = Math.min(k, this.size);
    this.count = 0;
    this.bestRow = rows;
    this.bestDistance = distances;
    this.offsets.fill(0);
    if (this.size > 0) this.visit(0, 0);
    return this.count;
  }

  private rotate(x: ArrayLike<number>, out: Float64Array): void {
    const { axes, nFeatures } = this;
    for (let a = 0; a < nFeatures; a++) {
      let sum = 0;
      for (let j = 0; j < nFeatures; j++) sum += axes[a * nFeatures + j]! * x[j]!;
      out[a] = sum;
    }
  }

  /** How far a box may be and still be searched: the k-th best distance plus the rounding margin. */
  private reach(): number {
    const worst = this.worst();
    return worst + PRUNE_SLACK * (1 + worst);
  }

  /** The k-th best distance so far (Infinity until k rows are held). */
  private worst(): number {
    return this.count < this.k ? Infinity : this.bestDistance[this.k - 1]!;
  }

  /**
   * `bound` is a lower bound of the squared distance from the query to the node's rows, kept up
   * incrementally (Arya and Mount): a child differs from its parent on the split axis only, whose
   * share of the bound is `offsets[axis]`, so each step costs O(1) instead of a box distance.
   */
  private visit(node: number, bound: number): void {
    if (bound > this.reach()) return;
    const left = this.left[node]!;
    if (left < 0) {
      // A leaf's own tight box is often farther than the bound its region gives.
      if (this.boxDistance(node, this.reach()) <= this.reach()) this.scanLeaf(node);
      return;
    }
    const axis = this.axis[node]!;
    const q = this.rotatedQuery[axis]!;
    const toRight = this.rightMin[node]! - q;
    const toLeft = q - this.leftMax[node]!;
    // Nearer side first: its rows tighten the k-th best before the other side is judged.
    const goLeft = toRight > toLeft;
    const near = goLeft ? left : this.right[node]!;
    const far = goLeft ? this.right[node]! : left;
    const gap = goLeft ? toRight : toLeft;
    this.visit(near, bound);
    // The far side lies at least `gap` away along the axis, and at least as far as its parent did.
    const offset = this.offsets[axis]!;
    const along = Math.max(gap, offset);
    const farBound = bound - offset * offset + along * along;
    if (farBound > this.reach()) return;
    this.offsets[axis] = along;
    this.visit(far, farBound);
    this.offsets[axis] = offset;
  }

  /**
   * Each row is first measured in rotated coordinates, largest variance first, so most rows pass
   * the reach within a few axes and are dropped; only the others get their exact distance.
   */
  private scanLeaf(node: number): void {
    const { points, rotatedPoints, query, rotatedQuery, nFeatures, rowOf, k } = this;
    let worst = this.worst();
    let reach = this.reach();
    for (let p = this.start[node]!, end = this.end[node]!, offset = p * nFeatures; p < end; p++, offset += nFeatures) {
      let near = 0;
      for (let a = 0; a < nFeatures && near <= reach; a++) {
        const d = rotatedPoints[offset + a]! - rotatedQuery[a]!;
        near += d * d;
      }
      if (near > reach) continue;
      let distance = 0;
      for (let j = 0; j < nFeatures; j++) {
        const d = points[offset + j]! - query[j]!;
        distance += d * d;
      }
      if (distance > worst) continue;
      const row = rowOf[p]!;
      if (distance === worst && row > this.bestRow[k - 1]!) continue;
      this.insert(distance, row);
      worst = this.worst();
      reach = this.reach();
    }
  }

  /** Puts a row into the sorted k best, dropping the last when full. */
  private insert(distance: number, row: number): void {
    const { bestDistance, bestRow } = this;
    let slot = this.count < this.k ? this.count++ : this.k - 1;
    while (slot > 0 && (bestDistance[slot - 1]! > distance || (bestDistance[slot - 1] === distance && bestRow[slot - 1]! > row))) {
      bestDistance[slot] = bestDistance[slot - 1]!;
      bestRow[slot] = bestRow[slot - 1]!;
      slot--;
    }
    bestDistance[slot] = distance;
    bestRow[slot] = row;
  }

  /**
   * Squared distance from the rotated query to the node's box; once the sum passes `bound` the
   * rest is left out (the box is skipped either way).
   */
  private boxDistance(node: number, bound: number): number {
    const { lo, hi, rotatedQuery: query, nFeatures } = this;
    let distance = 0;
    for (let j = 0, b = node * nFeatures; j < nFeatures && distance <= bound; j++, b++) {
      const q = query[j]!;
      const d = q < lo[b]! ? lo[b]! - q : q > hi[b]! ? q - hi[b]! : 0;
      distance += d * d;
    }
    return distance;
  }

  /** Builds the node for order[from, to) of the rotated rows: splits at the median of the widest axis. */
  private build(data: Float64Array, order: Int32Array, from: number, to: number, lo: number[], hi: number[]): number {
    const node = this.start.length;
    const { nFeatures } = this;
    this.start.push(from);
    this.end.push(to);
    this.left.push(-1);
    this.right.push(-1);
    this.axis.push(-1);
    this.leftMax.push(0);
    this.rightMin.push(0);
    let widest = 0;
    let spread = -1;
    for (let j = 0; j < nFeatures; j++) {
      let min = Infinity;
      let max = -Infinity;
      for (let p = from; p < to; p++) {
        const v = data[order[p]! * nFeatures + j]!;
        if (v < min) min = v;
        if (v > max) max = v;
      }
      lo[node * nFeatures + j] = min;
      hi[node * nFeatures + j] = max;
      if (max - min > spread) [widest, spread] = [j, max - min];
    }
    if (to - from <= LEAF_SIZE || spread <= 0) return node;
    const slice = order.subarray(from, to);
    slice.sort((a, b) => data[a * nFeatures + widest]! - data[b * nFeatures + widest]! || a - b);
    const middle = from + ((to - from) >> 1);
    this.axis[node] = widest;
    this.leftMax[node] = data[order[middle - 1]! * nFeatures + widest]!;
    this.rightMin[node] = data[order[middle]! * nFeatures + widest]!;
    this.left[node] = this.build(data, order, from, middle, lo, hi);
    this.right[node] = this.build(data, order, middle, to, lo, hi);
    return node;
  }
}
