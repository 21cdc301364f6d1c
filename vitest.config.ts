import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'parsers/**/*.test.ts', 'detectors/**/*.test.ts'],
    // Real-service suites live apart and run through `npm run test:services`.
    exclude: ['test/services/**', 'node_modules/**', 'dist/**'],
    testTimeout: 30_000,
    globalSetup: ['test/setup/build.ts'],
  },
});
