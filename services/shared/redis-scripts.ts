import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RedisClient } from './redis.js';

/**
 * Registers every Lua script of a folder on a connection, named after its file (`join-batch-4.lua`
 * -> `joinBatch`, 4 keys): the key count is read from the file name, never repeated elsewhere.
 * ioredis sends EVALSHA and loads a script when Redis lacks it.
 */
export function defineScripts(redis: RedisClient, dir: string): void {
  for (const file of readdirSync(dir)) {
    const match = /^(.+)-(\d+)\.lua$/.exec(file);
    if (match === null) continue;
    const name = (match[1] as string).replace(/-(\w)/g, (_, c: string) => c.toUpperCase());
    if ((redis as unknown as Record<string, unknown>)[name] !== undefined) continue;
    redis.defineCommand(name, { numberOfKeys: Number(match[2]), lua: readFileSync(join(dir, file), 'utf8') });
  }
}
