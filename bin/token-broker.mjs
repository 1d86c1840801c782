#!/usr/bin/env node
// The operators' CLI: runs lib/cli.ts through tsx, which the package depends on.
import { register } from 'tsx/esm/api';

register();
const { runCli } = await import('../lib/cli.ts');
process.exitCode = await runCli(process.argv.slice(2));
