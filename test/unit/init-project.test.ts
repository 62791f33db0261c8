import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CONFIG_TEMPLATE, SPEC_TEMPLATE, initProject } from '../../src/runner/init-project.js';

// The generated project running a spec on a real VM, from the npm package: test/integration/packed-package.test.ts.
describe('macvm init', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'macvm-init-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes the config, an example spec and a package.json with the script into a new dir', async () => {
    const project = join(dir, 'qa');
    expect(await initProject(project)).toEqual([
      { path: 'macvm.config.ts', action: 'written' },
      { path: join('specs', 'example.spec.ts'), action: 'written' },
      { path: 'package.json', action: 'written', note: 'with "test:vm": "macvm test specs"' },
    ]);
    expect(await readFile(join(project, 'macvm.config.ts'), 'utf8')).toBe(CONFIG_TEMPLATE);
    expect(await readFile(join(project, 'specs', 'example.spec.ts'), 'utf8')).toBe(SPEC_TEMPLATE);
    expect(JSON.parse(await readFile(join(project, 'package.json'), 'utf8'))).toEqual({ name: 'qa', private: true, type: 'module', scripts: { 'test:vm': 'macvm test specs' } });
  });

  it('never overwrites: a second init keeps every file byte for byte', async () => {
    await writeFile(join(dir, 'macvm.config.ts'), 'export default {};\n');
    await initProject(dir);
    const before = await Promise.all(['macvm.config.ts', 'specs/example.spec.ts', 'package.json'].map((p) => readFile(join(dir, p), 'utf8')));
    const steps = await initProject(dir);
    expect(steps.map((s) => s.action)).toEqual(['kept', 'kept', 'kept']);
    const after = await Promise.all(['macvm.config.ts', 'specs/example.spec.ts', 'package.json'].map((p) => readFile(join(dir, p), 'utf8')));
    expect(after).toEqual(before);
    expect(after[0]).toBe('export default {};\n');
  });

  it('adds the script to an existing package.json, keeping its other keys and its indentation', async () => {
    const manifest = { name: 'shop', version: '1.2.3', scripts: { test: 'vitest' }, devDependencies: { macvm: '^0.1.0' } };
    await writeFile(join(dir, 'package.json'), `${JSON.stringify(manifest, null, 4)}\n`);
    const steps = await initProject(dir);
    expect(steps[2]).toEqual({ path: 'package.json', action: 'updated', note: '"test:vm": "macvm test specs" added' });
    const text = await readFile(join(dir, 'package.json'), 'utf8');
    expect(JSON.parse(text)).toEqual({ ...manifest, scripts: { test: 'vitest', 'test:vm': 'macvm test specs' } });
    expect(text).toBe(`${JSON.stringify(JSON.parse(text), null, 4)}\n`);
  });

  it('keeps a test:vm script the project already has', async () => {
    await writeFile(join(dir, 'package.json'), JSON.stringify({ scripts: { 'test:vm': 'macvm test e2e' } }));
    expect((await initProject(dir))[2]).toMatchObject({ action: 'kept' });
    expect(JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')).scripts['test:vm']).toBe('macvm test e2e');
  });

  it('refuses a package.json it cannot parse, leaving it as it was', async () => {
    await writeFile(join(dir, 'package.json'), '{ "name": ');
    await expect(initProject(dir)).rejects.toMatchObject({ code: 'MACVM_BAD_ARGUMENT', message: expect.stringContaining('not valid JSON') });
    expect(await readFile(join(dir, 'package.json'), 'utf8')).toBe('{ "name": ');
  });

  it('refuses a path that is a file', async () => {
    await mkdir(join(dir, 'x'));
    await writeFile(join(dir, 'x', 'f'), '');
    await expect(initProject(join(dir, 'x', 'f'))).rejects.toMatchObject({ code: 'MACVM_BAD_ARGUMENT', message: expect.stringContaining('is not a directory') });
  });
});
