import { ModelParamsError } from '../errors.js';
import type { ModelFamily } from './types.js';

/** Shape checks for params read from JSON: a bad artifact must fail loudly at load, not at predict. */

export function expectRecord(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ModelParamsError(`${what} must be an object`);
  }
  return value as Record<string, unknown>;
}

export function expectParamsOf(value: unknown, family: ModelFamily): Record<string, unknown> {
  const params = expectRecord(value, `${family} params`);
  if (params.family !== family) throw new ModelParamsError(`params family is ${String(params.family)}, expected ${family}`);
  return params;
}

export function expectInteger(value: unknown, what: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ModelParamsError(`${what} must be an integer in [${min}, ${max}], got ${JSON.stringify(value)}`);
  }
  return value;
}

export function expectFiniteArray(value: unknown, what: string, length?: number): number[] {
  if (!Array.isArray(value)) throw new ModelParamsError(`${what} must be an array of numbers`);
  if (length !== undefined && value.length !== length) {
    throw new ModelParamsError(`${what} has ${value.length} entries, expected ${length}`);
  }
  for (const v of value) {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new ModelParamsError(`${what} holds a non-finite or non-numeric entry`);
  }
  return value as number[];
}

export function expectIntegerArray(value: unknown, what: string, min: number, max: number, length?: number): number[] {
  const values = expectFiniteArray(value, what, length);
  for (const v of values) {
    if (!Number.isInteger(v) || v < min || v > max) throw new ModelParamsError(`${what} holds ${v}, outside [${min}, ${max}]`);
  }
  return values;
}
