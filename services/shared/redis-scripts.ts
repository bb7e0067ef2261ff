import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from './errors.js';
import type { RedisClient } from './redis.js';

/** A script includes a helper with a line `--- @include "name"` (as BullMQ's scripts do). */
const INCLUDE = /^--- @include "([A-Za-z0-9_-]+)"[ \t]*$/gm;

/**
 * Replaces every include line by its source: a generated include (`generated[name]`, such as the key
 * schema built in TypeScript) or the file `includes/<name>.lua`. Each include is expanded once per
 * script, also when several helpers include it.
 */
export function expandIncludes(source: string, resolve: (name: string) => string, seen: Set<string> = new Set()): string {
  return source.replace(INCLUDE, (_, name: string) => {
    if (seen.has(name)) return `-- (${name} included above)`;
    seen.add(name);
    return expandIncludes(resolve(name), resolve, seen);
  });
}

/**
 * Registers every Lua script of a folder on a connection, named after its file (`join-batch-4.lua`
 * -> `joinBatch`, 4 keys): the key count is read from the file name, never repeated elsewhere.
 * ioredis sends EVALSHA and loads a script when Redis lacks it.
 */
export function defineScripts(redis: RedisClient, dir: string, generated: Readonly<Record<string, string>> = {}): void {
  for (const { name, keys, lua } of readScripts(dir, generated)) {
    if ((redis as unknown as Record<string, unknown>)[name] !== undefined) continue;
    redis.defineCommand(name, { numberOfKeys: keys, lua });
  }
}

/** The scripts of a folder with their includes expanded. */
export function readScripts(dir: string, generated: Readonly<Record<string, string>> = {}): { file: string; name: string; keys: number; lua: string }[] {
  const resolve = (name: string): string => {
    const source = generated[name];
    if (source !== undefined) return source;
    const path = join(dir, 'includes', `${name}.lua`);
    if (!existsSync(path)) throw new ConfigError(`Lua include "${name}" is neither generated nor a file ${path}`);
    return readFileSync(path, 'utf8');
  };
  return readdirSync(dir).flatMap((file) => {
    const match = /^(.+)-(\d+)\.lua$/.exec(file);
    if (match === null) return [];
    const name = (match[1] as string).replace(/-(\w)/g, (_, c: string) => c.toUpperCase());
    return [{ file, name, keys: Number(match[2]), lua: expandIncludes(readFileSync(join(dir, file), 'utf8'), resolve) }];
  });
}
