import { FusionError } from './errors.js';
import type { ModelOutput } from './types.js';
import type { WeightTable } from './weights.js';

const INITIAL_CAPACITY = 16;
const NO_OUTPUTS: readonly ModelOutput[] = [];

/**
 * One request's outputs in canonical order (ascending modelId) with their weights. Floating-point
 * sums depend on the order of their terms; a fixed order makes a fused result bit-identical whatever
 * order the predictions arrived in (replays, redeliveries). The buffers are reused from request to
 * request to keep the hot path allocation-light; fusion is synchronous, so one Batch per Fuser is safe.
 */
export class Batch {
  size = 0;
  /** Per position: the configured weight after `load`, rewritten in place by `normaliseWeights`. */
  weights = new Float64Array(INITIAL_CAPACITY);
  /** Per position scratch for a strategy (regression values). */
  values = new Float64Array(INITIAL_CAPACITY);
  private order = new Int32Array(INITIAL_CAPACITY);
  private outputs: readonly ModelOutput[] = NO_OUTPUTS;

  /** Orders and weighs `outputs`; throws on no outputs, a duplicate or an unknown model. */
  load(outputs: readonly ModelOutput[], table: WeightTable): void {
    const n = outputs.length;
    if (n === 0) throw new FusionError('NO_OUTPUTS', 'no model output to fuse');
    this.reserve(n);
    this.outputs = outputs;
    this.size = n;
    const order = this.order;
    // Insertion sort: a request has few models and they often arrive nearly sorted.
    for (let i = 0; i < n; i++) {
      const id = (outputs[i] as ModelOutput).modelId;
      let j = i;
      while (j > 0 && (outputs[order[j - 1] as number] as ModelOutput).modelId > id) {
        order[j] = order[j - 1] as number;
        j--;
      }
      order[j] = i;
    }
    for (let i = 0; i < n; i++) {
      const id = this.modelId(i);
      if (i > 0 && id === this.modelId(i - 1)) {
        throw new FusionError('DUPLICATE_MODEL', `model "${id}" answered more than once`, id);
      }
      const weight = table.weightOf(id);
      if (weight === undefined) {
        throw new FusionError('UNKNOWN_MODEL', `model "${id}" has no configured weight`, id);
      }
      this.weights[i] = weight;
    }
  }

  /** Drops the reference to the request's outputs so that they can be collected. */
  release(): void {
    this.outputs = NO_OUTPUTS;
    this.size = 0;
  }

  output(position: number): ModelOutput {
    return this.outputs[this.order[position] as number] as ModelOutput;
  }

  modelId(position: number): string {
    return this.output(position).modelId;
  }

  /** Sum of the present models' weights; throws unless it is positive. */
  totalWeight(): number {
    let total = 0;
    for (let i = 0; i < this.size; i++) total += this.weights[i] as number;
    if (!(total > 0)) {
      const ids: string[] = [];
      for (let i = 0; i < this.size; i++) ids.push(this.modelId(i));
      throw new FusionError('INVALID_WEIGHTS', `the weights of the present models (${ids.join(', ')}) sum to 0`);
    }
    return total;
  }

  /** Rescales the weights to sum to 1 over the present models. */
  normaliseWeights(): void {
    const total = this.totalWeight();
    for (let i = 0; i < this.size; i++) this.weights[i] = (this.weights[i] as number) / total;
  }

  /** The current weights by model id. */
  weightsUsed(): Record<string, number> {
    // No prototype: a model id such as "__proto__" must land as an ordinary key.
    const used = Object.create(null) as Record<string, number>;
    for (let i = 0; i < this.size; i++) used[this.modelId(i)] = this.weights[i] as number;
    return used;
  }

  private reserve(n: number): void {
    if (this.order.length >= n) return;
    let capacity = this.order.length;
    while (capacity < n) capacity *= 2;
    this.order = new Int32Array(capacity);
    this.weights = new Float64Array(capacity);
    this.values = new Float64Array(capacity);
  }
}
