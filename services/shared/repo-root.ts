import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

/**
 * The folder holding package.json, found from this module's own location: it runs from `services/`
 * under vitest and from `dist/services/` when built, and the working directory is anyone's guess.
 */
export function repoRoot(): string {
  if (cached !== undefined) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'schemas'))) return (cached = dir);
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find the ensemble-stream root (package.json and schemas/)');
    dir = parent;
  }
}
