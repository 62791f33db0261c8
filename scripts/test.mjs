#!/usr/bin/env node
// `npm test`: build, type-check, make sure the host has what the tests use (doctor --fix
// --with-test-tools: the Debian packages in src/vm/host-requirements.ts, and the linux-test
// and linux-browser guests), then run every vitest project. Ends with a plain
// "N passed, N failed, N skipped" line that CI systems can read.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const args = process.argv.slice(2);
function step(command, commandArgs) {
  const result = spawnSync(command, commandArgs, { stdio: 'inherit' });
  if (result.status !== 0) {
    console.error(`\n${command} ${commandArgs.join(' ')} failed (exit ${result.status ?? result.signal}).`);
    process.exit(result.status ?? 1);
  }
}

step('node', ['scripts/build.mjs']);
step('npx', ['tsc', '-p', 'tsconfig.json', '--noEmit']);
// The report page's script: browser JavaScript, checked against the DOM (not Node) on its own.
step('npx', ['tsc', '-p', 'src/report/browser/tsconfig.json']);
step('node', ['bin/macvm.js', 'doctor', '--fix', '--with-test-tools', '--quiet']);

const dir = mkdtempSync(join(tmpdir(), 'macvm-test-summary-'));
const summaryFile = join(dir, 'vitest.json');
const vitest = spawnSync('npx', ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${summaryFile}`, ...args], {
  stdio: 'inherit',
});
try {
  const summary = JSON.parse(readFileSync(summaryFile, 'utf8'));
  const skipped = summary.numPendingTests + summary.numTodoTests;
  console.log(`\n${summary.numPassedTests} passed, ${summary.numFailedTests} failed, ${skipped} skipped`);
} catch {
  console.log('\n0 passed, 1 failed');
}
rmSync(dir, { recursive: true, force: true });
process.exit(vitest.status ?? 1);
