import { defineConfig } from 'vitest/config';

// Pure logic (no infrastructure); integration suites that need a real Kafka and Redis, started once
// per run by the global setup (testcontainers or externally given addresses); cluster suites.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          // A ceiling for a loaded machine (selection and training run real fits), not a speed check.
          testTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/integration/global-setup.ts'],
          // Before any test file loads kafkajs: services/shared/kafkajs-produce-fix.ts.
          setupFiles: ['test/support/kafkajs-fix.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
      // A 3-broker Kafka and a Redis Cluster (plus a SCRAM broker and an ACL Redis), started by
      // test/cluster/run.sh (npm run test:cluster), which sets ES_CLUSTER_SUITES=1: a plain
      // `vitest run` keeps to the two projects above, and `--project cluster` without it finds none.
      ...(process.env.ES_CLUSTER_SUITES === '1'
        ? [
            {
              test: {
                name: 'cluster',
                include: ['test/cluster/**/*.test.ts', 'test/integration/pipeline.test.ts', 'test/integration/aggregator-restart.test.ts'],
                globalSetup: ['test/cluster/global-setup.ts'],
                setupFiles: ['test/support/kafkajs-fix.ts'],
                testTimeout: 240_000,
                hookTimeout: 120_000,
                fileParallelism: false,
              },
            },
          ]
        : []),
    ],
  },
});
