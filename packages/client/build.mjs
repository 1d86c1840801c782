// Builds dist/: the client as ESM (index.mjs) and CommonJS (index.cjs) with their declarations, and the CLI.
import { execFileSync } from 'node:child_process';
import { copyFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');
rmSync(dist, { recursive: true, force: true });
const common = { bundle: true, platform: 'node', target: 'node20', packages: 'external', logLevel: 'warning' };
await build({ ...common, entryPoints: [join(here, 'src/index.ts')], format: 'esm', outfile: join(dist, 'index.mjs') });
await build({ ...common, entryPoints: [join(here, 'src/index.ts')], format: 'cjs', outfile: join(dist, 'index.cjs') });
await build({
  ...common,
  entryPoints: [join(here, 'src/bin.ts')],
  format: 'esm',
  outfile: join(dist, 'cli.mjs'),
  banner: { js: '#!/usr/bin/env node' },
});
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
execFileSync(process.execPath, [tsc, '-p', join(here, 'tsconfig.build.json')], { stdio: 'inherit' });
// One self-contained declaration file, named for each module system so TypeScript reads it as that system's.
copyFileSync(join(dist, 'index.d.ts'), join(dist, 'index.d.mts'));
copyFileSync(join(dist, 'index.d.ts'), join(dist, 'index.d.cts'));
rmSync(join(dist, 'index.d.ts'));
