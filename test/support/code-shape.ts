import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

/**
 * Checks of the code's shape, as pure functions over file texts: which folders of `services/` may
 * import which (services depend on the libraries, never on each other), and how long functions are.
 */

/** Folders every service may use: the shared core, infrastructure helpers, the model library. */
export const LIBRARIES: Readonly<Record<string, readonly string[]>> = {
  core: ['core', 'shared', 'ml'],
  shared: ['shared'],
  ml: ['ml', 'shared'],
};

/** The command line starts and composes every service, so it alone may import them. */
export const COMPOSER = 'cli';

export interface SourceFile {
  /** Path relative to `services/`, with forward slashes. */
  path: string;
  text: string;
}

export interface ImportViolation {
  file: string;
  imports: string;
  reason: string;
}

/** The folders (under services/) that `folder` may import from. */
function allowedFor(folder: string): readonly string[] | 'any' {
  if (folder === COMPOSER) return 'any';
  return LIBRARIES[folder] ?? [folder, ...Object.keys(LIBRARIES)];
}

/** Relative import specifiers of a TypeScript text (static imports, re-exports, dynamic imports). */
export function relativeImports(text: string): string[] {
  const found: string[] = [];
  const pattern = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)['"](\.{1,2}\/[^'"]+)['"]/g;
  for (const match of text.matchAll(pattern)) found.push(match[1] as string);
  return found;
}

export function importViolations(files: readonly SourceFile[]): ImportViolation[] {
  const violations: ImportViolation[] = [];
  for (const file of files) {
    const folder = file.path.split('/')[0] as string;
    const allowed = allowedFor(folder);
    for (const spec of relativeImports(file.text)) {
      const target = join(file.path, '..', spec).split(sep).join('/');
      if (target.startsWith('..')) {
        violations.push({ file: file.path, imports: spec, reason: 'reaches outside services/' });
        continue;
      }
      const targetFolder = target.split('/')[0] as string;
      if (allowed === 'any' || allowed.includes(targetFolder)) continue;
      const reason =
        targetFolder in LIBRARIES || folder in LIBRARIES
          ? `${folder} may import only ${allowed.join(', ')}`
          : `service ${folder} imports service ${targetFolder}`;
      violations.push({ file: file.path, imports: spec, reason });
    }
  }
  return violations;
}

export interface FunctionLength {
  file: string;
  line: number;
  name: string;
  lines: number;
}

/** Every function-like node with a body (functions, methods, arrows, accessors, constructors), longest first. */
export function functionLengths(file: SourceFile): FunctionLength[] {
  const source = ts.createSourceFile(file.path, file.text, ts.ScriptTarget.Latest, true);
  const out: FunctionLength[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body !== undefined) {
      const first = source.getLineAndCharacterOfPosition(node.getStart(source)).line;
      const last = source.getLineAndCharacterOfPosition(node.end).line;
      const name = node.name !== undefined && ts.isIdentifier(node.name) ? node.name.text : '(anonymous)';
      out.push({ file: file.path, line: first + 1, name, lines: last - first + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out.sort((a, b) => b.lines - a.lines);
}

/** Every .ts file under `root`, paths relative to it. */
export function readSources(root: string): SourceFile[] {
  const out: SourceFile[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = resolve(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts')) out.push({ path: relative(root, path).split(sep).join('/'), text: readFileSync(path, 'utf8') });
    }
  };
  walk(root);
  return out;
}
