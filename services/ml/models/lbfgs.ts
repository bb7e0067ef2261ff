/**
 * Limited-memory BFGS for smooth convex objectives (the logistic-regression loss). Deterministic:
 * no randomness, so the same data always gives the same weights.
 */

/** Returns f(x) and writes the gradient at x into `gradient`. */
export type Objective = (x: Float64Array, gradient: Float64Array) => number;

export interface LbfgsOptions {
  maxIterations: number;
  /** Stop when the largest absolute gradient entry falls below this. */
  gradientTolerance: number;
  memory?: number;
}

export interface LbfgsResult {
  x: Float64Array;
  value: number;
  iterations: number;
  converged: boolean;
}

export function minimiseLbfgs(objective: Objective, x0: Float64Array, options: LbfgsOptions): LbfgsResult {
  const n = x0.length;
  const history = new CurvatureHistory(options.memory ?? 10);
  const x = Float64Array.from(x0);
  const g = new Float64Array(n);
  let f = objective(x, g);

  const direction = new Float64Array(n);
  const xNew = new Float64Array(n);
  const gNew = new Float64Array(n);

  for (let iteration = 0; iteration < options.maxIterations; iteration++) {
    if (maxAbs(g) < options.gradientTolerance) return { x, value: f, iterations: iteration, converged: true };

    const slope = history.descentDirection(g, direction);
    const fNew = lineSearch(objective, x, f, direction, slope, xNew, gNew);
    if (fNew === undefined) return { x, value: f, iterations: iteration, converged: false };

    history.add(x, xNew, g, gNew);
    const previous = f;
    x.set(xNew);
    g.set(gNew);
    f = fNew;
    if (Math.abs(previous - f) <= 1e-15 * Math.max(1, Math.abs(f))) {
      return { x, value: f, iterations: iteration + 1, converged: true };
    }
  }
  return { x, value: f, iterations: options.maxIterations, converged: maxAbs(g) < options.gradientTolerance };
}

/**
 * Backtracking line search with the Armijo condition: leaves the accepted point in `xNew` and its
 * gradient in `gNew` and returns its value, or undefined when no step decreased f enough.
 */
function lineSearch(
  objective: Objective,
  x: Float64Array,
  f: number,
  direction: Float64Array,
  slope: number,
  xNew: Float64Array,
  gNew: Float64Array,
): number | undefined {
  let step = 1;
  let fNew = Number.NaN;
  for (let attempt = 0; attempt < 40; attempt++) {
    for (let i = 0; i < x.length; i++) xNew[i] = x[i]! + step * direction[i]!;
    fNew = objective(xNew, gNew);
    if (fNew <= f + 1e-4 * step * slope) break;
    step *= 0.5;
  }
  return fNew <= f + 1e-4 * step * slope ? fNew : undefined;
}

/** The last `memory` steps s and gradient changes y, which stand in for the inverse Hessian H. */
class CurvatureHistory {
  private readonly s: Float64Array[] = [];
  private readonly y: Float64Array[] = [];
  private readonly rho: number[] = [];
  private readonly alpha: Float64Array;

  constructor(private readonly memory: number) {
    this.alpha = new Float64Array(memory);
  }

  /** Writes the search direction at gradient `g` into `direction`; returns the slope g . direction. */
  descentDirection(g: Float64Array, direction: Float64Array): number {
    this.twoLoop(g, direction);
    let slope = dot(g, direction);
    if (slope >= 0) {
      // Curvature history went stale: restart from steepest descent.
      this.s.length = this.y.length = this.rho.length = 0;
      direction.set(g);
      scale(direction, -1 / Math.max(1, Math.sqrt(dot(g, g))));
      slope = dot(g, direction);
    }
    return slope;
  }

  /** Two-loop recursion: direction = -H * g. */
  private twoLoop(g: Float64Array, direction: Float64Array): void {
    const { s, y, rho, alpha } = this;
    direction.set(g);
    for (let k = s.length - 1; k >= 0; k--) {
      alpha[k] = rho[k]! * dot(s[k]!, direction);
      axpy(-alpha[k]!, y[k]!, direction);
    }
    if (s.length > 0) {
      const last = s.length - 1;
      const yLast = y[last]!;
      scale(direction, dot(s[last]!, yLast) / dot(yLast, yLast));
    } else {
      scale(direction, 1 / Math.max(1, Math.sqrt(dot(g, g))));
    }
    for (let k = 0; k < s.length; k++) {
      const beta = rho[k]! * dot(y[k]!, direction);
      axpy(alpha[k]! - beta, s[k]!, direction);
    }
    scale(direction, -1);
  }

  /** Records the step from x to xNew; a pair without positive curvature is left out. */
  add(x: Float64Array, xNew: Float64Array, g: Float64Array, gNew: Float64Array): void {
    const n = x.length;
    const s = new Float64Array(n);
    const yDiff = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      s[i] = xNew[i]! - x[i]!;
      yDiff[i] = gNew[i]! - g[i]!;
    }
    const sy = dot(s, yDiff);
    if (sy > 1e-12) {
      if (this.s.length === this.memory) {
        this.s.shift();
        this.y.shift();
        this.rho.shift();
      }
      this.s.push(s);
      this.y.push(yDiff);
      this.rho.push(1 / sy);
    }
  }
}

function dot(a: Float64Array, b: Float64Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i]! * b[i]!;
  return sum;
}

function axpy(a: number, x: Float64Array, y: Float64Array): void {
  for (let i = 0; i < y.length; i++) y[i] = y[i]! + a * x[i]!;
}

function scale(x: Float64Array, a: number): void {
  for (let i = 0; i < x.length; i++) x[i] = x[i]! * a;
}

function maxAbs(x: Float64Array): number {
  let max = 0;
  for (let i = 0; i < x.length; i++) max = Math.max(max, Math.abs(x[i]!));
  return max;
}
