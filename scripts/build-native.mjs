#!/usr/bin/env node
// Builds native/ (the Virtualization.framework addon) with node-gyp — only on Apple Silicon
// macOS, where it can run. Everywhere else it says so in one line and exits 0, so it is safe
// to call from npm scripts on any host.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const nativeDir = join(root, 'native');

if (process.platform !== 'darwin' || process.arch !== 'arm64') {
  console.log(`build-native: skipped — the Virtualization.framework addon builds only on darwin-arm64 (this is ${process.platform}-${process.arch}).`);
  process.exit(0);
}

try {
  createRequire(join(root, 'package.json')).resolve('node-addon-api');
} catch {
  console.error('build-native: node-addon-api is not installed; run `npm install node-addon-api@8` (an optional dependency) and retry.');
  process.exit(1);
}

// npm hands lifecycle scripts the path of its bundled node-gyp; outside npm, fall back to npx.
const bundled = process.env.npm_config_node_gyp;
const [command, args] =
  bundled && existsSync(bundled)
    ? [process.execPath, [bundled, 'rebuild', '--directory', nativeDir]]
    : ['npx', ['--yes', 'node-gyp@11', 'rebuild', '--directory', nativeDir]];
const result = spawnSync(command, args, { stdio: 'inherit', cwd: root });
if (result.status !== 0) {
  console.error('build-native: node-gyp failed (Xcode command line tools installed? `xcode-select --install`).');
  process.exit(result.status ?? 1);
}
console.log(`build-native: built ${join(nativeDir, 'build', 'Release', 'macvm_vz.node')}`);
