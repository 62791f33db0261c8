#!/usr/bin/env node
// The `macvm` CLI. Runs the compiled code in dist/; in a source checkout without a build
// it falls back to the TypeScript sources through tsx, so `npx macvm` works during development.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const compiled = join(root, 'dist', 'runner', 'cli.js');
let cli;
if (existsSync(compiled)) {
  cli = await import(pathToFileURL(compiled).href);
} else {
  const { tsImport } = await import('tsx/esm/api');
  cli = await tsImport(pathToFileURL(join(root, 'src', 'runner', 'cli.ts')).href, import.meta.url);
}
process.exitCode = await cli.main(process.argv.slice(2));
