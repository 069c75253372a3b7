import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // native compute on a 2-core machine: two files at a time at most
    maxWorkers: 2,
    pool: 'forks',
  },
});
