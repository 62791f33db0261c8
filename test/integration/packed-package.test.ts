/**
 * What a team installs is the npm package, not this repository: `npm pack`'s tarball, unpacked
 * into a project of its own, must run a spec on a real VM with nothing from the repo but its
 * dependencies. Catches a runtime file left out of package.json's `files`, a path resolved from
 * the repo root, and noise every run would print there (source maps pointing at src/, which the
 * package does not ship).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunResult } from '../../src/shared/results.js';
import { REPO_ROOT, runMacvm } from '../support/run-macvm.js';
import { type TestHome, createTestHome } from '../support/vm-home.js';

let scratch: string;
let home: TestHome;
let project: string;

beforeAll(async () => {
  home = await createTestHome();
  scratch = await mkdtemp(join(tmpdir(), 'macvm-packed-'));
  // The tarball npm would publish. dist/ is fresh (npm test builds first); --ignore-scripts, as
  // `prepare` would rebuild dist/ in place under the other tests running from it.
  const tarball = execFileSync('npm', ['pack', '--silent', '--ignore-scripts', '--pack-destination', scratch], { cwd: REPO_ROOT, encoding: 'utf8' }).trim().split('\n').pop()!;
  project = join(scratch, 'qa-project');
  const installed = join(project, 'node_modules', 'macvm');
  await mkdir(installed, { recursive: true });
  execFileSync('tar', ['-xzf', join(scratch, tarball), '-C', installed, '--strip-components=1']);
  // Its dependencies as npm installs them for a user: the production ones only (no typescript,
  // no @types a devDependency brings), linked from the repo's install (no network in a test).
  for (const name of productionPackages()) {
    const target = join(project, 'node_modules', name);
    await mkdir(dirname(target), { recursive: true });
    await symlink(join(REPO_ROOT, 'node_modules', name), target);
  }
  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'qa-project', private: true, type: 'module' }));
  await mkdir(join(project, 'specs'));
  await writeFile(
    join(project, 'specs', 'smoke.spec.ts'),
    `import { expect, it, withMacVM } from 'macvm';

withMacVM('from the installed package', { image: 'linux-test', cpus: 1, memory: '256MiB' }, (vm) => {
  it('runs a command in the guest', async () => {
    expect((await vm.sh\`echo \${'packed ok'}\`).stdout).toBe('packed ok');
  });
});
`,
  );
}, 120_000);

/** Top-level node_modules entries (`name` or `@scope/name`) that `npm install macvm` would bring. */
function productionPackages(): string[] {
  const paths = execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: REPO_ROOT, encoding: 'utf8' }).split('\n');
  const names = new Set<string>();
  for (const path of paths) {
    const parts = relative(join(REPO_ROOT, 'node_modules'), path).split(sep);
    if (parts[0] === '' || parts[0] === '..') continue;
    names.add(parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!);
  }
  return [...names];
}

afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
  await home?.cleanup();
});

async function runInstalled(args: string[]): Promise<{ code: number | null; output: string }> {
  const { code, stdout, stderr } = await runMacvm(args, {
    bin: join(project, 'node_modules', 'macvm', 'bin', 'macvm.js'),
    cwd: project,
    // The project's own reports/ (the default), not wherever this test run keeps its reports.
    env: { MACVM_HOME: home.home, MACVM_REPORTS_DIR: undefined },
  }).done;
  return { code, output: `${stdout}${stderr}` };
}

describe('the npm package, installed in a project of its own', () => {
  it('macvm init adds a config, an example spec and a script; both specs run on a real VM, reports in that project', { timeout: 120_000 }, async () => {
    const init = await runInstalled(['init']);
    expect(init.code, init.output).toBe(0);
    expect(init.output).toMatch(/written +macvm\.config\.ts/);
    expect(JSON.parse(await readFile(join(project, 'package.json'), 'utf8'))).toMatchObject({ name: 'qa-project', type: 'module', scripts: { 'test:vm': 'macvm test specs' } });
    const { code, output } = await runInstalled(['test', 'specs']);
    expect(code, output).toBe(0);
    // Nothing of the repository was needed; vitest found every source map's sources.
    expect(output).not.toMatch(/points to missing source files/i);
    const result = JSON.parse(await readFile(join(project, 'reports', 'results.json'), 'utf8')) as RunResult;
    // The smoke spec and init's example, which takes its image from init's macvm.config.ts.
    expect(result.totals).toMatchObject({ tests: 2, passed: 2, failed: 0 });
    expect(existsSync(join(project, 'reports', 'index.html'))).toBe(true);
    expect(await home.leftovers()).toEqual({ runtimeDirs: [], qemuPids: [] });
  });

  it('type-checks a spec against the package\'s own declarations, strict, with skipLibCheck off for them', { timeout: 120_000 }, async () => {
    await writeFile(
      join(project, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext', strict: true, noEmit: true, skipLibCheck: false }, include: ['specs', 'typed.ts'] }),
    );
    // vm.safari() must be a real WebdriverIO.Browser, not an unresolved namespace or any.
    await writeFile(
      join(project, 'typed.ts'),
      `import { withMacVM, type MacVM } from 'macvm';
import { defineConfig } from 'macvm/config';
export const config = defineConfig({ provider: 'qemu' });
export async function title(vm: MacVM): Promise<string> {
  const browser = await vm.safari();
  // @ts-expect-error a WebdriverIO.Browser has no such method: proves the type is not any
  browser.noSuchMethod();
  return browser.getTitle();
}
withMacVM('typed', { image: 'linux-test' }, () => undefined);
`,
    );
    const tsc = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    let output = '';
    try {
      execFileSync(process.execPath, [tsc, '-p', project], { cwd: project, encoding: 'utf8' });
    } catch (error) {
      output = `${(error as { stdout?: string }).stdout ?? ''}${(error as { stderr?: string }).stderr ?? ''}` || String(error);
    }
    // Only our declarations and the spec count: a dependency's own (webdriverio's optional
    // puppeteer-core types) is that project's to fix, and skipLibCheck hides it for most users.
    const ours = output.split('\n').filter((line) => /error TS/.test(line) && !/node_modules[/\\](?!macvm[/\\])/.test(line.split('(')[0]!));
    expect(ours).toEqual([]);
  });
});
