#!/usr/bin/env node
// `npm run build`: compile src/ into dist/ with tsconfig.build.json (tests excluded), copy the
// files tsc does not emit, and delete from dist/ whatever no source makes any more — a test
// compiled before tests were excluded, a module since moved — so the package ships only what
// the sources make. dist/ is pruned, not wiped, so a `macvm` running from it meanwhile keeps
// working.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
/** Used at run time but not TypeScript: copied as they are (paths relative to src/ and dist/). */
const ASSETS = ['report/browser/report-script.js'];

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const result = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json'), '--listEmittedFiles'], {
  encoding: 'utf8',
  stdio: ['ignore', 'pipe', 'inherit'],
});
const emitted = new Set();
for (const line of result.stdout.split('\n')) {
  if (line.startsWith('TSFILE: ')) emitted.add(resolve(line.slice('TSFILE: '.length).trim()));
  else if (line.trim()) console.log(line);
}

// Copied even when tsc reported errors: it emitted dist/ all the same, and that dist/ must still
// find its assets (bin/macvm.js runs dist/ whenever it exists).
for (const asset of ASSETS) {
  const target = join(dist, asset);
  mkdirSync(dirname(target), { recursive: true });
  copyFileSync(join(root, 'src', asset), target);
  emitted.add(target);
}
if (result.status !== 0) {
  console.error(`tsc -p tsconfig.build.json failed (exit ${result.status ?? result.signal}).`);
  process.exit(result.status ?? 1);
}

/** Removes files this build did not write, then directories left empty; returns whether `dir` is now empty. */
function prune(dir) {
  let empty = true;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory() ? prune(path) : !emitted.has(path)) {
      if (entry.isDirectory()) rmdirSync(path);
      else {
        rmSync(path, { force: true });
        console.log(`build: removed stale ${relative(root, path)}`);
      }
    } else {
      empty = false;
    }
  }
  return empty;
}
prune(dist);
