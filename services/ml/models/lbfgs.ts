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
  const memory = options.memory ?? 10;
  const x = Float64Array.from(x0);
  const g = new Float64Array(n);
  let f = objective(x, g);

  const sHistory: Float64Array[] = [];
  const yHistory: Float64Array[] = [];
  const rhoHistory: number[] = [];
  const alpha = new Float64Array(memory);
  const direction = new Float64Array(n);
  const xNew = new Float64Array(n);
  const gNew = new Float64Array(n);

  for (let iteration = 0; iteration < options.maxIterations; iteration++) {
    if (maxAbs(g) < options.gradientTolerance) return { x, value: f, iterations: iteration, converged: true };

    // Two-loop recursion: direction = -H * g.
    direction.set(g);
    for (let k = sHistory.length - 1; k >= 0; k--) {
      alpha[k] = rhoHistory[k]! * dot(sHistory[k]!, direction);
      axpy(-alpha[k]!, yHistory[k]!, direction);
    }
    if (sHistory.length > 0) {
      const last = sHistory.length - 1;
      const yLast = yHistory[last]!;
      scale(direction, dot(sHistory[last]!, yLast) / dot(yLast, yLast));
    } else {
      scale(direction, 1 / Math.max(1, Math.sqrt(dot(g, g))));
    }
    for (let k = 0; k < sHistory.length; k++) {
      const beta = rhoHistory[k]! * dot(yHistory[k]!, direction);
      axpy(alpha[k]! - beta, sHistory[k]!, direction);
    }
    scale(direction, -1);

    let slope = dot(g, direction);
    if (slope >= 0) {
      // Curvature history went stale: restart from steepest descent.
      sHistory.length = yHistory.length = rhoHistory.length = 0;
      direction.set(g);
      scale(direction, -1 / Math.max(1, Math.sqrt(dot(g, g))));
      slope = dot(g, direction);
    }

    // Backtracking line search with the Armijo condition.
    let step = 1;
    let fNew = Number.NaN;
    for (let attempt = 0; attempt < 40; attempt++) {
      for (let i = 0; i < n; i++) xNew[i] = x[i]! + step * direction[i]!;
      fNew = objective(xNew, gNew);
      if (fNew <= f + 1e-4 * step * slope) break;
      step *= 0.5;
    }
    if (!(fNew <= f + 1e-4 * step * slope)) return { x, value: f, iterations: iteration, converged: false };

    const s = new Float64Array(n);
    const yDiff = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      s[i] = xNew[i]! - x[i]!;
      yDiff[i] = gNew[i]! - g[i]!;
    }
    const sy = dot(s, yDiff);
    if (sy > 1e-12) {
      if (sHistory.length === memory) {
        sHistory.shift();
        yHistory.shift();
        rhoHistory.shift();
      }
      sHistory.push(s);
      yHistory.push(yDiff);
      rhoHistory.push(1 / sy);
    }
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
