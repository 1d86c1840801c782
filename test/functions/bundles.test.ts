import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { FUNCTION_BUNDLING } from '../../infra/bundling';

// What each function's deployed bundle holds (built as infra/bundling.ts says; its size is a goal of `npm run bench`):
// code a function never calls stays out, so that the 150 KB budget goes to what it runs.

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Each module in the bundle, with the bytes it adds to it. */
async function modulesOf(entry: string): Promise<Map<string, number>> {
  const result = await build({
    entryPoints: [resolve(ROOT, entry)],
    absWorkingDir: ROOT,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: FUNCTION_BUNDLING.target,
    minify: FUNCTION_BUNDLING.minify,
    mainFields: FUNCTION_BUNDLING.mainFields,
    external: FUNCTION_BUNDLING.externalModules,
    write: false,
    outfile: resolve(ROOT, '.bench/guard/index.mjs'),
    metafile: true,
    logLevel: 'error',
  });
  const output = Object.values(result.metafile.outputs).find((o) => o.entryPoint !== undefined)!;
  return new Map(Object.entries(output.inputs).filter(([, v]) => v.bytesInOutput > 0).map(([path, v]) => [path, v.bytesInOutput]));
}

describe("the functions' bundles", () => {
  it('the pre-warm and rotation functions carry neither the HTTP routes, their schemas, nor the console', async () => {
    for (const entry of ['functions/prewarm.ts', 'functions/rotation.ts']) {
      const modules = [...(await modulesOf(entry)).keys()];
      expect(modules.filter((m) => /^functions\/(http|schemas|answers|openapi)\.ts$|^lib\/console\//.test(m))).toEqual([]);
    }
  });

  it("no function carries Powertools' Metrics nor middy: lib/adapters/emf.ts writes the EMF documents, functions/entry.ts runs the middleware", async () => {
    for (const entry of ['functions/http.ts', 'functions/prewarm.ts', 'functions/rotation.ts']) {
      const modules = [...(await modulesOf(entry)).keys()];
      expect(modules).toContain('lib/adapters/emf.ts');
      expect(modules).toContain('functions/entry.ts');
      expect(modules.filter((m) => /@aws-lambda-powertools\/metrics|@middy\//.test(m))).toEqual([]);
    }
  });

  it("no function carries Powertools at all, nor the runtime's invoke store it brought: lib/adapters/log.ts writes the log lines", async () => {
    for (const entry of ['functions/http.ts', 'functions/prewarm.ts', 'functions/rotation.ts']) {
      const modules = [...(await modulesOf(entry)).keys()];
      expect(modules).toContain('lib/adapters/log.ts');
      expect(modules.filter((m) => /@aws-lambda-powertools\/|@aws\/lambda-invoke-store/.test(m))).toEqual([]);
    }
  });

  it("the http function carries no answer schema (openapi.ts's alone) and not all of zod's util namespace", async () => {
    const bytes = await modulesOf('functions/http.ts');
    const modules = [...bytes.keys()];
    expect(modules).toContain('functions/schemas.ts');
    expect(modules.filter((m) => /^functions\/(answers|openapi)\.ts$/.test(m))).toEqual([]);
    // z.catch reads zod's util as an object, which keeps every helper in it: 13.6 KB of util.js, against 5.3 KB.
    expect(bytes.get('node_modules/zod/v4/core/util.js')).toBeLessThan(8 * 1024);
  });
});
