import { defineConfig } from 'vitest/config';

// Two projects: pure logic (no infrastructure) and integration suites that need a real Kafka and
// Redis, started once per run by the global setup (testcontainers or externally given addresses).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/integration/global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
