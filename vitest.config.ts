import { defineConfig } from 'vitest/config';

// The project's own tests. Unit tests are fast and need nothing; integration tests
// boot real QEMU guests, start real sshd/chromium, and so run one file at a time
// on this 2-core machine.
export default defineConfig({
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts', 'src/**/*.test.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          testTimeout: 180_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
