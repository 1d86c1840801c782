import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

// The layers' import rules, read from the source: lib/ never imports functions/ or infra/; the CDK app never
// loads a Lambda handler; lib/contract.ts, which all three share, imports nothing.

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');

const SPECIFIER = /(?:^|[\s;])(?:import|export)\s[^'"`;]*?from\s*['"]([^'"]+)['"]|(?:^|[\s;(])import\s*\(\s*['"]([^'"]+)['"]\s*\)|^\s*import\s*['"]([^'"]+)['"]/gm;

/** Every module specifier a file imports or re-exports (static, side-effect and literal dynamic imports). */
export function specifiersOf(source: string): string[] {
  return [...source.matchAll(SPECIFIER)].map((m) => m[1] ?? m[2] ?? m[3]!);
}

function tsFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => join(e.parentPath, e.name));
}

/** The repository file a relative specifier names (the project imports without extensions), or undefined. */
function resolveRelative(from: string, spec: string): string | undefined {
  if (!spec.startsWith('.')) return undefined;
  const base = resolve(dirname(from), spec);
  return [`${base}.ts`, join(base, 'index.ts'), base].find((f) => existsSync(f) && f.endsWith('.ts'));
}

const isHandlerModule = (file: string) => /^export const handler\b|^export \{[^}]*\bhandler\b/m.test(readFileSync(file, 'utf8'));

/** Each broken rule, as `file -> imported file: rule`, relative to root. */
export function boundaryViolations(root: string): string[] {
  const rel = (f: string) => relative(root, f).split('\\').join('/');
  const under = (f: string, dir: string) => rel(f).startsWith(`${dir}/`);
  const imports = (file: string) =>
    specifiersOf(readFileSync(file, 'utf8'))
      .map((s) => resolveRelative(file, s))
      .filter((f): f is string => f !== undefined);
  const found: string[] = [];

  for (const file of tsFiles(join(root, 'lib'))) {
    if (rel(file) === 'lib/contract.ts' && specifiersOf(readFileSync(file, 'utf8')).length > 0) {
      found.push('lib/contract.ts: imports something, but every layer loads it');
    }
    for (const target of imports(file)) {
      if (under(target, 'functions') || under(target, 'infra')) found.push(`${rel(file)} -> ${rel(target)}: lib/ imports neither functions/ nor infra/`);
    }
  }

  // The CDK app's whole import graph, so that a handler cannot come in through a module in between.
  const seen = new Set<string>();
  const pending = tsFiles(join(root, 'infra'));
  for (let file = pending.pop(); file !== undefined; file = pending.pop()) {
    if (seen.has(file)) continue;
    seen.add(file);
    for (const target of imports(file)) {
      if (under(target, 'functions') && isHandlerModule(target)) found.push(`${rel(file)} -> ${rel(target)}: the CDK app loads no Lambda handler`);
      else pending.push(target);
    }
  }
  return found;
}

describe('import boundaries', () => {
  it('lib/ imports neither functions/ nor infra/, the CDK app loads no Lambda handler, lib/contract.ts imports nothing', () => {
    expect(boundaryViolations(REPO)).toEqual([]);
  });

  it('the check sees each kind of violation (a repository laid out wrongly on purpose)', () => {
    const root = mkdtempSync(join(tmpdir(), 'boundaries-'));
    try {
      const write = (path: string, text: string) => {
        mkdirSync(dirname(join(root, path)), { recursive: true });
        writeFileSync(join(root, path), text);
      };
      write('functions/http.ts', "export const handler = async () => ({});\n");
      write('functions/schemas.ts', "export const TokenAnswer = {};\n");
      write('functions/openapi.ts', "import { TokenAnswer } from './schemas';\nimport { makeHandler } from './http';\nexport const openApiDocument = () => ({});\n");
      write('functions/rotation.ts', "export const ROTATION_EVENTS = ['PutSecretValue'];\nexport const handler = async () => ({});\n");
      write('lib/contract.ts', "import { z } from 'zod';\nexport const A = 1;\n");
      write('lib/local/app.ts', "import type { Metrics } from '@aws-lambda-powertools/metrics';\nimport {\n  makeHandler,\n} from '../../functions/http';\n");
      write('lib/lazy.ts', "export const load = () => import('../infra/stacks');\n");
      write('infra/stacks.ts', "import { ROTATION_EVENTS } from '../functions/rotation';\nexport * from './constructs/api';\n");
      write('infra/constructs/api.ts', "import { openApiDocument } from '../../functions/openapi';\nimport { handler } from './via';\n");
      write('infra/constructs/via.ts', "export { handler } from '../../functions/http';\n");

      expect(boundaryViolations(root).sort()).toEqual(
        [
          'functions/openapi.ts -> functions/http.ts: the CDK app loads no Lambda handler',
          'infra/constructs/via.ts -> functions/http.ts: the CDK app loads no Lambda handler',
          'infra/stacks.ts -> functions/rotation.ts: the CDK app loads no Lambda handler',
          'lib/contract.ts: imports something, but every layer loads it',
          'lib/lazy.ts -> infra/stacks.ts: lib/ imports neither functions/ nor infra/',
          'lib/local/app.ts -> functions/http.ts: lib/ imports neither functions/ nor infra/',
        ].sort(),
      );
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

/** STYLE.md's limits for lib/ (lib/local/ aside): files, classes and functions a reader can hold in mind. */
export const SIZE_LIMITS = { fileLines: 400, classLines: 300, functionLines: 60 };

/** Each file, class or function under lib/ (lib/local/ aside) over its limit, as `file:line kind lines`. */
export function sizeViolations(root: string): string[] {
  const found: string[] = [];
  const rel = (f: string) => relative(root, f).split('\\').join('/');
  for (const file of tsFiles(join(root, 'lib')).filter((f) => !rel(f).startsWith('lib/local/'))) {
    const text = readFileSync(file, 'utf8');
    const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
    const lineOf = (pos: number) => source.getLineAndCharacterOfPosition(pos).line + 1;
    const lines = lineOf(text.trimEnd().length);
    if (lines > SIZE_LIMITS.fileLines) found.push(`${rel(file)} file ${lines} lines`);
    const visit = (node: ts.Node) => {
      const span = lineOf(node.getEnd()) - lineOf(node.getStart(source)) + 1;
      const at = `${rel(file)}:${lineOf(node.getStart(source))}`;
      if (ts.isClassLike(node) && span > SIZE_LIMITS.classLines) found.push(`${at} class ${span} lines`);
      if (ts.isFunctionLike(node) && 'body' in node && node.body && span > SIZE_LIMITS.functionLines) found.push(`${at} function ${span} lines`);
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return found;
}

describe('size limits', () => {
  it('no file under lib/ (lib/local/ aside) over 400 lines, no class over 300, no function or method over 60', () => {
    expect(sizeViolations(REPO)).toEqual([]);
  });

  it('the check sees each kind of excess (a repository written long on purpose)', () => {
    const root = mkdtempSync(join(tmpdir(), 'sizes-'));
    try {
      const write = (path: string, text: string) => {
        mkdirSync(dirname(join(root, path)), { recursive: true });
        writeFileSync(join(root, path), text);
      };
      const body = (n: number) => Array.from({ length: n }, (_, i) => `    const v${i} = ${i};`).join('\n');
      write('lib/long-method.ts', `export class A {\n  m(): void {\n${body(59)}\n  }\n  ok(): void {\n${body(58)}\n  }\n}\n`);
      write('lib/long-arrow.ts', `export const f = () => {\n${body(59)}\n};\n`);
      const methods = Array.from({ length: 6 }, (_, i) => `  m${i}(): void {\n${body(50)}\n  }`).join('\n');
      write('lib/long-class.ts', `export class B {\n${methods}\n}\n`);
      write('lib/long-file.ts', Array.from({ length: 401 }, (_, i) => `export const c${i} = ${i};`).join('\n') + '\n');
      write('lib/local/long.ts', Array.from({ length: 500 }, (_, i) => `export const c${i} = ${i};`).join('\n') + '\n');
      expect(sizeViolations(root).sort()).toEqual(
        ['lib/long-arrow.ts:1 function 61 lines', 'lib/long-class.ts:1 class 314 lines', 'lib/long-file.ts file 401 lines', 'lib/long-method.ts:2 function 61 lines'].sort(),
      );
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
