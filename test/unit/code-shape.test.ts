import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../services/shared/repo-root.js';
import { functionLengths, importViolations, readSources, relativeImports } from '../support/code-shape.js';

const services = readSources(join(repoRoot(), 'services'));

describe('import boundaries', () => {
  it('finds static, re-exported and dynamic relative imports', () => {
    const text = `import a from './a.js';\nimport type { B } from "../core/b.js";\nexport { c } from './c.js';\nconst d = await import('../shared/d.js');\nimport './side.js';\nimport x from 'kafkajs';`;
    expect(relativeImports(text)).toEqual(['./a.js', '../core/b.js', './c.js', '../shared/d.js', './side.js']);
  });

  it('rejects a service importing another service, and the core importing a service', () => {
    const violations = importViolations([
      { path: 'evaluator/main.ts', text: `import { x } from '../aggregator/fuser.js';\nimport { y } from '../core/fusion/index.js';` },
      { path: 'core/fusion/index.ts', text: `import { z } from '../../worker/worker.js';\nimport { e } from '../../shared/errors.js';` },
      { path: 'cli/main.ts', text: `import { runAggregator } from '../aggregator/main.js';` },
      { path: 'shared/kafka.ts', text: `import { c } from '../core/ensemble-config.js';` },
    ]);
    expect(violations).toEqual([
      { file: 'evaluator/main.ts', imports: '../aggregator/fuser.js', reason: 'service evaluator imports service aggregator' },
      { file: 'core/fusion/index.ts', imports: '../../worker/worker.js', reason: 'core may import only core, shared, ml' },
      { file: 'shared/kafka.ts', imports: '../core/ensemble-config.js', reason: 'shared may import only shared' },
    ]);
  });

  it('holds in services/: services import the core, shared and ml, never each other', () => {
    expect(services.length).toBeGreaterThan(50);
    expect(importViolations(services)).toEqual([]);
  });
});

const MAX_FUNCTION_LINES = 60;

describe('function length', () => {
  it('measures a function from its first line to its last', () => {
    const lengths = functionLengths({ path: 'x.ts', text: 'function f() {\n  return 1;\n}\nclass C {\n  m(): void {}\n}\n' });
    expect(lengths.map((f) => [f.name, f.lines])).toEqual([
      ['f', 3],
      ['m', 1],
    ]);
  });

  it(`keeps every function in services/ under ${MAX_FUNCTION_LINES} lines, as formatted`, () => {
    const long = services.flatMap(functionLengths).filter((f) => f.lines >= MAX_FUNCTION_LINES);
    expect(long.map((f) => `${f.file}:${f.line} ${f.name} (${f.lines} lines)`)).toEqual([]);
  });
});

describe('configuration', () => {
  it('documents every environment variable the services read in the README', () => {
    const readme = readFileSync(join(repoRoot(), 'README.md'), 'utf8');
    const read = new Set<string>();
    for (const { text } of services) {
      for (const m of text.matchAll(/\benv\.([A-Z][A-Z0-9_]+)|['"`]((?:ES|KAFKA|REDIS)_[A-Z0-9_]+)['"`]/g)) read.add((m[1] ?? m[2]) as string);
    }
    expect(read.size).toBeGreaterThan(30);
    const undocumented = [...read].filter((name) => !readme.includes(`\`${name}\``) && !readme.includes(`${name},`) && !readme.includes(`, \`${name}`));
    expect(undocumented).toEqual([]);
  });
});
