import { randomBytes } from 'node:crypto';

/** A short random name, so every test has its own topics, groups and keys. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}
