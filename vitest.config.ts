import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/support/setup.ts'],
    // The logger (lib/adapters/log.ts) and the EMF writer (lib/adapters/emf.ts) log through console (captured by setup.ts), EMF off.
    env: { POWERTOOLS_DEV: 'true', POWERTOOLS_METRICS_DISABLED: 'true', POWERTOOLS_LOG_LEVEL: 'DEBUG' },
    benchmark: { include: ['test/**/*.bench.ts'] },
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Real servers on loopback and dynalite: a couple of workers is all 2 cores can give.
    pool: 'forks',
    maxWorkers: 2,
  },
});
