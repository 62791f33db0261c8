import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MacvmError } from '../../src/errors.js';
import { defaultProvider, defaultSlots, loadConfig, resolveConfig, type HostFacts } from '../../src/runner/config.js';

const qemuSlots = (cpus: number, totalMemoryBytes: number) => defaultSlots({ platform: 'linux', arch: 'x64', cpus, totalMemoryBytes }).qemu;

const host: HostFacts = { platform: 'linux', arch: 'x64', cpus: 8, totalMemoryBytes: 24 * 2 ** 30 };
const configModule = resolve('src/runner/config.ts');
const dirs: string[] = [];

async function project(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'macvm-config-'));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return dir;
}

afterEach(async () => {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

/** The MacvmError a promise or function fails with. */
async function failure(run: () => unknown): Promise<MacvmError> {
  try {
    await run();
  } catch (error) {
    expect(error).toBeInstanceOf(MacvmError);
    expect((error as MacvmError).code).toBe('MACVM_CONFIG_INVALID');
    return error as MacvmError;
  }
  throw new Error('expected a MACVM_CONFIG_INVALID error, got none');
}

const resolveRaw = (raw: unknown, env: NodeJS.ProcessEnv = {}) => resolveConfig(raw, { root: '/project', env, host });

describe('loadConfig', () => {
  it('imports a TypeScript config that uses defineConfig and type-only syntax', async () => {
    const cwd = await project({
      'macvm.config.ts': `import { defineConfig } from ${JSON.stringify(configModule)};
type Mem = string;
const memory: Mem = '2GiB';
export default defineConfig({ defaults: { image: 'linux-test', memory, disk: '10GB', cpus: 2 }, slots: { qemu: 3 }, reports: { dir: 'out/reports' } });
`,
    });
    const config = await loadConfig({ cwd, env: {}, host });
    expect(config.configFile).toBe(join(cwd, 'macvm.config.ts'));
    expect(config.defaults).toEqual({ image: 'linux-test', cpus: 2, memory: 2048, disk: 9537, display: undefined });
    expect(config.slots.qemu).toBe(3);
    expect(config.slots.vz).toBe(2);
    expect(config.reports.dir).toBe(join(cwd, 'out/reports'));
    // The bench history goes with the reports unless bench.history says otherwise.
    expect(config.bench.history).toBe(join(cwd, 'out/reports/bench/history.jsonl'));
  });

  it('takes the default export of a .ts config that also has named exports, and says so when there is none', async () => {
    const both = await project({ 'macvm.config.ts': `export default { provider: 'ssh' };\nexport const helper = 1;\n` });
    expect((await loadConfig({ cwd: both, env: {}, host })).provider).toBe('ssh');
    const named = await project({ 'macvm.config.ts': `export const provider = 'ssh';\n` });
    expect((await failure(() => loadConfig({ cwd: named, env: {}, host }))).message).toContain('has no default export');
  });

  it('a config importing macvm where macvm is not installed says how to fix that, without the loader\'s require stack', async () => {
    const cwd = await project({ 'macvm.config.ts': `import { defineConfig } from 'macvm/config';\nexport default defineConfig({});\n` });
    const error = await failure(() => loadConfig({ cwd, env: {}, host }));
    expect(error.message).toContain("Cannot find module 'macvm/config'");
    expect(error.message).not.toContain('Require stack');
    expect(error.hint).toContain('npm i -D macvm');
  });

  it('imports an .mjs config whose default export is a function', async () => {
    const cwd = await project({ 'macvm.config.mjs': `export default async () => ({ provider: 'ssh', timeouts: { ready: 5000 } });\n` });
    const config = await loadConfig({ cwd, env: {}, host });
    expect(config.provider).toBe('ssh');
    expect(config.timeouts).toEqual({ ready: 5000, stop: 10_000, slot: 1_800_000 });
  });

  it('uses every default when there is no config file', async () => {
    const cwd = await project({});
    const config = await loadConfig({ cwd, env: { MACVM_HOME: '/tmp/macvm-home-x' }, host });
    expect(config.configFile).toBeUndefined();
    expect(config.home).toBe('/tmp/macvm-home-x');
    expect(config.provider).toBe('qemu');
    expect(config.slots).toEqual({ vz: 2, tart: 2, qemu: 8, ssh: 1, orchard: 4 });
    expect(config.snapshots).toEqual({ update: 'missing', pathTemplate: '{specDir}/__image_snapshots__/{specName}/{name}.png', threshold: 0.1, strictEnvironment: false });
    expect(config.reports).toEqual({ dir: join(cwd, 'reports'), html: true, junit: true });
  });

  it('names the file and the key when the file is invalid', async () => {
    const cwd = await project({ 'macvm.config.ts': `export default { slots: { qemu: 'two' } };\n` });
    const error = await failure(() => loadConfig({ cwd, env: {}, host }));
    expect(error.message).toContain(join(cwd, 'macvm.config.ts'));
    expect(error.message).toContain('slots.qemu must be a positive integer, got "two"');
  });

  it('reports a config that does not compile as a config error with the cause', async () => {
    const cwd = await project({ 'macvm.config.ts': `export default { slots: { qemu: 2 ;\n` });
    const error = await failure(() => loadConfig({ cwd, env: {}, host }));
    expect(error.message).toMatch(/^Could not load .*macvm\.config\.ts/);
    expect(error.cause).toBeDefined();
  });

  it('requires a default export', async () => {
    const cwd = await project({ 'macvm.config.mjs': `export const slots = { qemu: 2 };\n` });
    const error = await failure(() => loadConfig({ cwd, env: {}, host }));
    expect(error.message).toContain('has no default export');
  });

  it('fails when an explicitly named config file does not exist', async () => {
    const cwd = await project({});
    const error = await failure(() => loadConfig({ cwd, env: {}, host, configFile: 'nope.config.ts' }));
    expect(error.message).toContain(join(cwd, 'nope.config.ts'));
  });
});

describe('config validation', () => {
  it.each([
    [{ slots: { qemu: 0 } }, 'slots.qemu must be a positive integer, got 0'],
    [{ slots: { qemu: 1.5 } }, 'slots.qemu must be a positive integer, got 1.5'],
    [{ provider: 'qmeu' }, 'provider must be one of "qemu", "vz", "tart", "ssh", "orchard", got "qmeu" (did you mean "qemu"?)'],
    [{ defaults: { memory: '8 gigs' } }, 'defaults.memory must be a size such as "8GiB", "512MiB", "80GB" or a number of MiB, got "8 gigs"'],
    [{ defaults: { display: 'yes' } }, 'defaults.display must be true or false, got "yes"'],
    [{ timeouts: { ready: -1 } }, 'timeouts.ready must be a positive integer, got -1'],
    [{ snapshots: { threshold: 2 } }, 'snapshots.threshold must be a number from 0 to 1, got 2'],
    [{ snapshots: { update: 'changd' } }, 'did you mean "changed"?'],
    // 0 is a gate too (any significant slowdown), as for --fail-on-regression and benchMacVM's option.
    [{ bench: { failOnRegression: -1 } }, 'bench.failOnRegression must be a number'],
    [{ images: { 'bad/name': {} } }, 'images key "bad/name" must be an image name'],
    [{ images: { sonoma: { ssh: { password: 'x' } } } }, 'images.sonoma.ssh.user is required'],
    [{ ssh: { host: 'mac.lab', user: 'admin', port: 70000 } }, 'ssh.port must be an integer from 1 to 65535, got 70000'],
    [{ ssh: { host: 'mac.lab', user: 'admin' } }, 'ssh.hostKey is required'],
    [{ reports: 'out' }, 'reports must be an object, got "out"'],
    [['qemu'], ' must be an object'],
  ])('rejects %j: %s', async (raw, expected) => {
    const error = await failure(() => resolveRaw(raw));
    expect(error.message).toContain(expected);
  });

  it('rejects unknown keys with the closest known key', async () => {
    const top = await failure(() => resolveRaw({ timeout: { ready: 1000 } }));
    expect(top.message).toContain('timeout is not a known key (did you mean "timeouts"?)');
    const nested = await failure(() => resolveRaw({ defaults: { memroy: '1GiB' } }));
    expect(nested.message).toContain('defaults.memroy is not a known key (did you mean "defaults.memory"?)');
    const far = await failure(() => resolveRaw({ colour: 'blue' }));
    expect(far.message).toContain('colour is not a known key; known keys: provider, images');
    expect(far.message).not.toContain('did you mean');
  });

  it('reports every problem at once, with the key paths in details', async () => {
    const error = await failure(() => resolveRaw({ slots: { qemu: 'two', vz: 3 }, cpus: 4, defaults: { cpus: 0 } }));
    expect(error.message).toContain('3 problems');
    expect((error.details.problems as Array<{ path: string }>).map((p) => p.path)).toEqual(['slots.qemu', 'cpus', 'defaults.cpus']);
  });

  it('accepts a full, valid config', () => {
    const config = resolveRaw({
      provider: 'tart',
      images: {
        sonoma: { provider: 'tart', source: 'ghcr.io/cirruslabs/macos-sonoma-base:latest', ssh: { user: 'admin', password: 'admin' } },
        // A registry reference is an image key too: the login of a pulled image.
        'ghcr.io/cirruslabs/macos-sonoma-xcode:latest': { provider: 'vz', ssh: { user: 'admin', password: 'admin' } },
      },
      defaults: { image: 'sonoma', cpus: 4, memory: 8192, disk: '80GB', display: true },
      slots: { tart: 1 },
      timeouts: { ready: 300_000, stop: 5_000, slot: 0 },
      snapshots: { update: 'none', pathTemplate: '{testDir}/shots/{arg}{ext}', threshold: 0.2, maxDiffPixels: 10, maxDiffPixelRatio: 0.01 },
      bench: { history: '/var/bench.jsonl', failOnRegression: 10 },
      reports: { dir: 'r', html: false, junit: true },
      ssh: { host: 'mac.lab', user: 'admin', hostKey: 'ssh-ed25519 AAAA', os: 'macos' },
    });
    expect(config.provider).toBe('tart');
    expect(config.defaults.memory).toBe(8192);
    expect(config.defaults.disk).toBe(76294);
    expect(config.slots.tart).toBe(1);
    expect(config.timeouts.slot).toBe(0);
    expect(config.bench).toEqual({ history: '/var/bench.jsonl', failOnRegression: 10 });
    expect(config.reports).toEqual({ dir: '/project/r', html: false, junit: true });
  });

  it('puts the bench history beside the reports, wherever MACVM_REPORTS_DIR or reports.dir moves them, unless bench.history names a file', () => {
    expect(resolveRaw({}).bench).toEqual({ history: '/project/reports/bench/history.jsonl', failOnRegression: undefined });
    expect(resolveRaw({ reports: { dir: 'out' } }).bench.history).toBe('/project/out/bench/history.jsonl');
    expect(resolveRaw({ reports: { dir: 'out' } }, { MACVM_REPORTS_DIR: '/ci/reports' }).bench.history).toBe('/ci/reports/bench/history.jsonl');
    expect(resolveRaw({ reports: { dir: 'out' }, bench: { history: 'perf/history.jsonl' } }, { MACVM_REPORTS_DIR: '/ci/reports' }).bench.history).toBe('/project/perf/history.jsonl');
  });
});

describe('environment overrides', () => {
  it('override the config file', () => {
    const config = resolveRaw(
      { provider: 'qemu', slots: { qemu: 4 }, timeouts: { ready: 1000 }, reports: { dir: 'a' }, snapshots: { update: 'all' } },
      { MACVM_PROVIDER: 'tart', MACVM_SLOTS_QEMU: '2', MACVM_SLOTS_VZ: '1', MACVM_READY_TIMEOUT: '90000', MACVM_REPORTS_DIR: 'ci-out', MACVM_UPDATE_SNAPSHOTS: 'none' },
    );
    expect(config.provider).toBe('tart');
    expect(config.slots.qemu).toBe(2);
    expect(config.slots.vz).toBe(1);
    expect(config.timeouts.ready).toBe(90_000);
    expect(config.reports.dir).toBe('/project/ci-out');
    expect(config.snapshots.update).toBe('none');
  });

  it('treat empty variables as unset', () => {
    const config = resolveRaw({ provider: 'ssh', ssh: { host: 'h', user: 'u', hostKey: 'k' } }, { MACVM_PROVIDER: '', MACVM_SLOTS_QEMU: ' ' });
    expect(config.provider).toBe('ssh');
    expect(config.slots.qemu).toBe(8);
  });

  it('never write baselines in CI unless told to', () => {
    expect(resolveRaw({}, { CI: 'true' }).snapshots.update).toBe('none');
    expect(resolveRaw({}, { CI: 'false' }).snapshots.update).toBe('missing');
    expect(resolveRaw({}, { CI: '1', MACVM_UPDATE_SNAPSHOTS: 'missing' }).snapshots.update).toBe('missing');
  });

  it.each([
    [{ MACVM_SLOTS_QEMU: 'two' }, 'MACVM_SLOTS_QEMU must be a positive integer, got "two"'],
    [{ MACVM_SLOTS_QEMU: '0' }, 'MACVM_SLOTS_QEMU must be a positive integer, got "0"'],
    [{ MACVM_SLOTS_QUEMU: '2' }, 'MACVM_SLOTS_QUEMU names no provider (did you mean MACVM_SLOTS_QEMU?)'],
    [{ MACVM_PROVIDER: 'VZ' }, 'MACVM_PROVIDER must be one of qemu, vz, tart, ssh, orchard, got "VZ" (did you mean "vz"?)'],
    [{ MACVM_READY_TIMEOUT: '2m' }, 'MACVM_READY_TIMEOUT must be a positive integer of milliseconds, got "2m"'],
    [{ MACVM_UPDATE_SNAPSHOTS: 'true' }, 'MACVM_UPDATE_SNAPSHOTS must be one of missing, changed, all, none, got "true"'],
  ])('reject %j naming the variable', async (env, expected) => {
    const error = await failure(() => resolveRaw({}, env));
    expect(error.message).toContain('(the environment)');
    expect(error.message).toContain(expected);
  });
});

describe('defaults from the host', () => {
  it('gives qemu one slot per CPU thread and per 2 GiB of RAM, at least one', () => {
    expect(qemuSlots(2, 24 * 2 ** 30)).toBe(2);
    expect(qemuSlots(16, 8 * 2 ** 30)).toBe(4);
    expect(qemuSlots(4, 3 * 2 ** 30)).toBe(1);
    expect(qemuSlots(1, 512 * 2 ** 20)).toBe(1);
  });

  it('picks vz on Apple Silicon Macs and qemu elsewhere', () => {
    expect(defaultProvider({ platform: 'darwin', arch: 'arm64' })).toBe('vz');
    expect(defaultProvider({ platform: 'darwin', arch: 'x64' })).toBe('qemu');
    expect(defaultProvider({ platform: 'linux', arch: 'arm64' })).toBe('qemu');
  });
});
