import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  EPOCH_FIELD,
  EVAL_COUNTER,
  EVAL_KEY,
  EVAL_REQUEST_FIELD,
  EVAL_SUBJECT_FIELD,
  EVAL_WINDOW_FIELD,
  evaluatorLuaSchema,
  JOIN_KEY,
  JOIN_STATE,
  joinLuaSchema,
  REQUEST_FIELD,
} from '../../services/shared/redis-keys.js';
import { expandIncludes, readScripts } from '../../services/shared/redis-scripts.js';
import { ConfigError } from '../../services/shared/errors.js';
import { repoRoot } from '../../services/shared/repo-root.js';

const JOIN_LUA = join(repoRoot(), 'services', 'aggregator', 'lua');
const EVALUATOR_LUA = join(repoRoot(), 'services', 'evaluator', 'lua');

describe('Lua includes', () => {
  it('replaces an include line by its source, once per script, also through nested includes', () => {
    const sources: Record<string, string> = { a: '--- @include "b"\nlocal A = 1', b: 'local B = 2' };
    const out = expandIncludes('--- @include "a"\n--- @include "b"\nreturn A + B', (name) => sources[name] as string);
    expect(out).toBe('local B = 2\nlocal A = 1\n-- (b included above)\nreturn A + B');
  });

  it('fails loudly on an include that is neither generated nor a file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'es-lua-'));
    writeFileSync(join(dir, 'uses-helper-1.lua'), '--- @include "helper"\nreturn 1');
    expect(() => readScripts(dir)).toThrow(ConfigError);
    expect(() => readScripts(dir)).toThrow(/Lua include "helper" is neither generated nor a file/);
    mkdirSync(join(dir, 'includes'));
    writeFileSync(join(dir, 'includes', 'helper.lua'), 'local H = 1');
    expect(readScripts(dir)[0]?.lua).toBe('local H = 1\nreturn 1');
  });

  it('names each script after its file and takes the key count from it', () => {
    const scripts = readScripts(JOIN_LUA, { schema: joinLuaSchema() });
    expect(scripts.map((s) => [s.name, s.keys]).sort()).toEqual([
      ['claimDeadlines', 1],
      ['finishRequests', 1],
      ['joinBatch', 4],
      ['restorePartition', 4],
    ]);
    for (const s of scripts) expect(s.lua).not.toMatch(/@include/);
  });
});

const JOIN_NAMES = [...Object.values(JOIN_KEY), ...Object.values(REQUEST_FIELD), ...Object.values(JOIN_STATE), ...Object.values(EPOCH_FIELD)];
const EVALUATOR_NAMES = [
  ...Object.values(EVAL_KEY),
  ...Object.values(EVAL_REQUEST_FIELD),
  ...Object.values(EVAL_COUNTER),
  ...Object.values(EVAL_WINDOW_FIELD),
  ...Object.values(EVAL_SUBJECT_FIELD),
];
// The record kinds "p", "f" and "l" that the evaluator's scripts take in ARGV share letters with fields.
const MESSAGE_KINDS = new Set(['p', 'f', 'l']);

describe.each([
  ['join', JOIN_LUA, joinLuaSchema, JOIN_NAMES, new Set<string>()],
  ['evaluator', EVALUATOR_LUA, evaluatorLuaSchema, EVALUATOR_NAMES, MESSAGE_KINDS],
] as const)('the %s schema has one home', (_, dir, schema, names, allowed) => {
  it('renders every key suffix and field of redis-keys.ts into the generated include', () => {
    const lua = schema();
    for (const value of names) expect(lua).toContain(`'${value}'`);
  });

  it('leaves no key suffix or field name as a literal in the scripts', () => {
    const known = new Set<string>(names);
    for (const { file } of readScripts(dir, { schema: '' })) {
      const code = readFileSync(join(dir, file), 'utf8')
        .replace(/--\[\[[\s\S]*?\]\]/g, '')
        .replace(/--.*$/gm, '');
      const literals = [...code.matchAll(/'([^']*)'|"([^"]*)"/g)].map((m) => m[1] ?? m[2]);
      expect({ file, literals: literals.filter((l) => l !== undefined && known.has(l) && !allowed.has(l)) }).toEqual({ file, literals: [] });
    }
  });
});
