/** Index of the largest of the first `length` entries; ties go to the lowest index, like np.argmax. */
export function argmax(xs: ArrayLike<number>, length: number): number {
  let best = 0;
  let bestValue = xs[0] as number;
  for (let i = 1; i < length; i++) {
    const x = xs[i] as number;
    if (x > bestValue) {
      best = i;
      bestValue = x;
    }
  }
  return best;
}

/**
 * sum_i a_i * b_i over the first `length` entries with Neumaier compensation: regression values are
 * signed, so plain summation can cancel catastrophically (e.g. 1e16 + 1 - 1e16).
 */
export function compensatedDot(a: Float64Array, b: Float64Array, length: number): number {
  let sum = 0;
  let compensation = 0;
  for (let i = 0; i < length; i++) {
    const x = (a[i] as number) * (b[i] as number);
    const t = sum + x;
    compensation += Math.abs(sum) >= Math.abs(x) ? sum - t + x : x - t + sum;
    sum = t;
  }
  return sum + compensation;
}

/** (a + b) / 2 as np.median computes it, without overflowing when a + b exceeds the double range. */
export function midpoint(a: number, b: number): number {
  const s = a + b;
  // Halving a finite double is exact outside the subnormal range, so a/2 + b/2 rounds only once.
  return Number.isFinite(s) ? s / 2 : a / 2 + b / 2;
}

export function zeros(length: number): number[] {
  const xs: number[] = [];
  for (let i = 0; i < length; i++) xs.push(0);
  return xs;
}
