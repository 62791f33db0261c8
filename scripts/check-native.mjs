#!/usr/bin/env node
// Compile-checks every native source (native/src/*.mm) against Apple's macOS SDK with clang,
// for arm64-apple-macos12, the addon's minimum. Runs on any host (Linux too) given an SDK,
// so a misspelt selector or a wrong type fails here, not first on a Mac.
//
//   node scripts/check-native.mjs --sdk <MacOSX12.sdk> [--src <dir>] [--addon-api <dir>] [--node-headers <dir>]
//
// SDK: --sdk, else MACVM_MACOS_SDK, else on macOS `xcrun --show-sdk-path`. Without one it
// skips (exit 0) — except under CI, where a skipped check would hide breakage (exit 1).
// Exit 1 on any compile error. README.md ("macOS on Apple Silicon") says where to get an SDK; never commit one.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    sdk: { type: 'string' },
    src: { type: 'string' },
    'addon-api': { type: 'string' },
    'node-headers': { type: 'string' },
    clang: { type: 'string' },
  },
});

// Kept in step with native/binding.gyp: the same language mode and defines as the real build.
const TARGET = 'arm64-apple-macos12';
const DEFINES = ['-DNAPI_VERSION=8', '-DNAPI_DISABLE_CPP_EXCEPTIONS', '-DNODE_ADDON_API_DISABLE_DEPRECATED'];

function fail(message) {
  console.error(`check-native: ${message}`);
  process.exit(1);
}

function findSdk() {
  const given = values.sdk ?? process.env.MACVM_MACOS_SDK;
  if (given) return resolve(given);
  if (process.platform === 'darwin') {
    try {
      return execFileSync('xcrun', ['--sdk', 'macosx', '--show-sdk-path'], { encoding: 'utf8' }).trim();
    } catch {
      // fall through to the skip below
    }
  }
  return undefined;
}

function findAddonApi() {
  const candidates = [values['addon-api'], process.env.MACVM_NODE_ADDON_API];
  try {
    candidates.push(dirname(createRequire(join(root, 'package.json')).resolve('node-addon-api/package.json')));
  } catch {
    // not installed: it is an optional dependency
  }
  for (const candidate of candidates) {
    if (candidate && existsSync(join(candidate, 'napi.h'))) return resolve(candidate);
  }
  fail('node-addon-api headers not found: install node-addon-api, or pass --addon-api <dir> / MACVM_NODE_ADDON_API (the dir holding napi.h).');
}

function findNodeHeaders() {
  const version = process.versions.node;
  const candidates = [
    values['node-headers'],
    process.env.MACVM_NODE_HEADERS,
    join(dirname(process.execPath), '..', 'include', 'node'),
    join(homedir(), '.cache', 'node-gyp', version, 'include', 'node'),
    join(homedir(), 'Library', 'Caches', 'node-gyp', version, 'include', 'node'),
    '/usr/include/node',
  ];
  for (const candidate of candidates) {
    if (candidate && existsSync(join(candidate, 'node_api.h'))) return resolve(candidate);
  }
  fail('Node headers (node_api.h) not found: pass --node-headers <dir>, or run `npx node-gyp install` once.');
}

function compile(clang, args, file) {
  return new Promise((done) => {
    const child = spawn(clang, [...args, file], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', (error) => done({ file, ok: false, stderr: `${clang}: ${error.message}` }));
    child.on('close', (code) => done({ file, ok: code === 0, stderr }));
  });
}

const sdk = findSdk();
if (!sdk) {
  if (process.env.CI) fail('no macOS SDK given (--sdk or MACVM_MACOS_SDK) and this is CI: refusing to skip.');
  console.log('check-native: skipped — no macOS SDK (pass --sdk <path> or set MACVM_MACOS_SDK; see README.md, "macOS on Apple Silicon").');
  process.exit(0);
}
if (!existsSync(join(sdk, 'System', 'Library', 'Frameworks', 'Virtualization.framework'))) {
  fail(`${sdk} is not a macOS SDK with Virtualization.framework (expected System/Library/Frameworks/Virtualization.framework).`);
}

const srcDir = resolve(values.src ?? join(root, 'native', 'src'));
const sources = readdirSync(srcDir).filter((name) => name.endsWith('.mm')).sort();
if (sources.length === 0) fail(`no .mm sources in ${srcDir}`);

const clang = values.clang ?? process.env.CXX ?? 'clang++';
const args = [
  '-fsyntax-only',
  '-target', TARGET,
  '-isysroot', sdk,
  '-stdlib=libc++',
  '-std=c++17',
  '-fobjc-arc',
  '-Wall',
  '-Werror',
  '-Wno-unused-parameter',
  '-x', 'objective-c++',
  ...DEFINES,
  '-I', srcDir,
  '-I', findAddonApi(),
  '-I', findNodeHeaders(),
];

// Two at a time: clang on the SDK headers is memory- and CPU-heavy, and CI hosts are small.
const results = [];
const queue = [...sources];
await Promise.all(
  [0, 1].map(async () => {
    for (let name = queue.shift(); name; name = queue.shift()) results.push(await compile(clang, args, join(srcDir, name)));
  }),
);
let failed = 0;
for (const result of results.sort((a, b) => a.file.localeCompare(b.file))) {
  console.log(`${result.ok ? 'ok  ' : 'FAIL'}  ${result.file}`);
  if (!result.ok) {
    failed++;
    process.stderr.write(result.stderr);
  }
}
console.log(`check-native: ${results.length - failed}/${results.length} sources compile for ${TARGET} against ${sdk}`);
process.exit(failed ? 1 : 0);
