import { runCli } from './cli';

// The installed `token-broker` command.
process.exitCode = await runCli(process.argv.slice(2));
