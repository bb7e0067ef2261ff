/**
 * The principal axes of row-major data: the eigenvectors of its covariance (cyclic Jacobi), as the
 * rows of an orthonormal nFeatures x nFeatures matrix, largest variance first. A rotation onto them
 * keeps every distance and lets a k-d tree split along the directions the data varies in.
 */
export function principalAxes(data: Float64Array, nFeatures: number): Float64Array {
  const d = nFeatures;
  const n = data.length / d;
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j]! += data[i * d + j]!;
  for (let j = 0; j < d; j++) mean[j] = mean[j]! / Math.max(1, n);
  const a = new Float64Array(d * d);
  for (let i = 0; i < n; i++) {
    for (let r = 0; r < d; r++) {
      const xr = data[i * d + r]! - mean[r]!;
      for (let c = r; c < d; c++) a[r * d + c]! += xr * (data[i * d + c]! - mean[c]!);
    }
  }
  for (let r = 0; r < d; r++) for (let c = 0; c < r; c++) a[r * d + c] = a[c * d + r]!;
  const v = jacobiEigenvectors(a, d);
  const variance = Array.from({ length: d }, (_, j) => ({ j, value: a[j * d + j]! })).sort((x, y) => y.value - x.value || x.j - y.j);
  const axes = new Float64Array(d * d);
  variance.forEach(({ j }, row) => {
    for (let r = 0; r < d; r++) axes[row * d + r] = v[r * d + j]!;
  });
  return orthonormalise(axes, d);
}

/** Diagonalises the symmetric `a` in place; returns the eigenvectors as the columns of a matrix. */
function jacobiEigenvectors(a: Float64Array, d: number): Float64Array {
  const v = new Float64Array(d * d);
  for (let j = 0; j < d; j++) v[j * d + j] = 1;
  for (let sweep = 0; sweep < 50; sweep++) {
    let off = 0;
    for (let p = 0; p < d; p++) for (let q = p + 1; q < d; q++) off += a[p * d + q]! ** 2;
    if (off < 1e-22) break;
    for (let p = 0; p < d; p++) {
      for (let q = p + 1; q < d; q++) {
        const apq = a[p * d + q]!;
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (a[q * d + q]! - a[p * d + p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < d; k++) {
          const akp = a[k * d + p]!;
          const akq = a[k * d + q]!;
          a[k * d + p] = c * akp - s * akq;
          a[k * d + q] = s * akp + c * akq;
        }
        for (let k = 0; k < d; k++) {
          const apk = a[p * d + k]!;
          const aqk = a[q * d + k]!;
          a[p * d + k] = c * apk - s * aqk;
          a[q * d + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < d; k++) {
          const vkp = v[k * d + p]!;
          const vkq = v[k * d + q]!;
          v[k * d + p] = c * vkp - s * vkq;
          v[k * d + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  return v;
}

/** Gram-Schmidt over the rows, twice, so the rotation keeps distances to rounding. */
function orthonormalise(m: Float64Array, d: number): Float64Array {
  for (let pass = 0; pass < 2; pass++) {
    for (let r = 0; r < d; r++) {
      for (let prev = 0; prev < r; prev++) {
        let dot = 0;
        for (let c = 0; c < d; c++) dot += m[r * d + c]! * m[prev * d + c]!;
        for (let c = 0; c < d; c++) m[r * d + c]! -= dot * m[prev * d + c]!;
      }
      let norm = 0;
      for (let c = 0; c < d; c++) norm += m[r * d + c]! ** 2;
      norm = Math.sqrt(norm);
      for (let c = 0; c < d; c++) m[r * d + c] = norm > 0 ? m[r * d + c]! / norm : r === c ? 1 : 0;
    }
  }
  return m;
}
