// The operators' CLI ships with the client package (its `token-broker` bin); bin/token-broker.mjs runs it from source.
export { EXIT, exitCodeFor, runCli, table, type CliIo } from '../packages/client/src/cli';
