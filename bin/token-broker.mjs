#!/usr/bin/env node
// The operators' CLI from this repository's sources (installed, it is @token-broker/client's own `token-broker`).
import { register } from 'tsx/esm/api';

register();
const { runCli } = await import('../lib/cli.ts');
process.exitCode = await runCli(process.argv.slice(2));
