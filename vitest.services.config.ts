import { defineConfig } from 'vitest/config';

// The real-service suite (`npm run test:services`): Kafka, ClickHouse and
// Redis on loopback, started by scripts/services.sh. Files run one after
// another because they share those servers and some stop and restart them.
export default defineConfig({
  test: {
    include: ['test/services/**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**'],
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 300_000,
    teardownTimeout: 60_000,
    globalSetup: ['test/setup/services.ts'],
  },
});
