import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkLayers, findCycle, folderGraph, LAYERS, ONLY, PROVIDER_PARENTS, readSourceTree } from '../../scripts/check-layers.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

describe('the layers of src/ (DESIGN.md: dependencies point downwards only)', () => {
  const { imports, violations } = checkLayers(readSourceTree(ROOT));

  it('no import runs up a layer, across side-by-side folders, from report to runtime code, or between providers', () => {
    expect(imports.length).toBeGreaterThan(100);
    expect(violations.map((violation) => violation.message)).toEqual([]);
  });

  it('the folder graph has no cycle, type-only imports included', () => {
    expect(findCycle(folderGraph(imports))).toBeUndefined();
  });

  it('every folder the table names exists, so a renamed folder cannot leave a stale row', () => {
    const named = [...LAYERS.flat(), ...Object.keys(ONLY), ...Object.values(ONLY).flat(), ...PROVIDER_PARENTS];
    const missing = named.filter((name) => !existsSync(resolve(ROOT, 'src', name)) && !existsSync(resolve(ROOT, 'src', `${name}.ts`)));
    expect(missing).toEqual([]);
  });
});

describe('the layer check fails when it should', () => {
  const check = (files: Record<string, string>) => checkLayers(new Map(Object.entries(files))).violations.map((v) => `${v.file}:${v.line} ${v.rule}`);

  it('an upward import, however it is written: import, import type, export from, dynamic import(), import() type', () => {
    expect(
      check({
        'src/vm/a.ts': "import { x } from '../machine/macvm.js';",
        'src/vm/b.ts': "// a comment\nimport type { MacVM } from '../machine/macvm.js';",
        'src/vm/c.ts': "export { startMacVM } from '../machine/start.js';",
        'src/vm/d.ts': "export async function f() {\n  return (await import('../runner/config.js')).x;\n}",
        'src/vm/e.ts': "export type T = import('../fixtures/with-macvm.js').WithMacVMOptions;",
        'src/errors.ts': "import { parseSize } from './util/size.js';",
      }),
    ).toEqual(['src/vm/a.ts:1 upward', 'src/vm/b.ts:2 upward', 'src/vm/c.ts:1 upward', 'src/vm/d.ts:2 upward', 'src/vm/e.ts:1 upward', 'src/errors.ts:1 upward']);
  });

  it('side by side: vm and guest never import each other', () => {
    expect(
      check({
        'src/guest/session.ts': "import type { SshCredentials } from '../vm/types.js';",
        'src/vm/start.ts': "import { connectGuest } from '../guest/session.js';",
      }),
    ).toEqual(['src/guest/session.ts:1 side-by-side', 'src/vm/start.ts:1 side-by-side']);
  });

  it('report imports no runtime code, even from a lower layer', () => {
    expect(
      check({
        'src/report/html.ts': "import type { RunResult } from '../shared/results.js';\nimport { median } from '../bench/stats.js';",
      }),
    ).toEqual(['src/report/html.ts:2 runtime-code']);
  });

  it("a provider imports vm's shared files, never another provider's folder; vm's own files may import providers", () => {
    expect(
      check({
        'src/vm/vz/provider.ts': "import { pinnedCredentials } from '../tart/credentials.js';\nimport type { Provider } from '../types.js';\nimport { x } from './vm-spec.js';",
        'src/vm/qemu/image/build.ts': "import { y } from '../../ssh/settings.js';\nimport { z } from '../boot.js';",
        'src/vm/registry.ts': "import { createQemuProvider } from './qemu/provider.js';",
      }),
    ).toEqual(['src/vm/vz/provider.ts:1 provider-to-provider', 'src/vm/qemu/image/build.ts:1 provider-to-provider']);
  });

  it('a folder the table does not list is named, not let through', () => {
    expect(check({ 'src/helpers/x.ts': "import { MacvmError } from '../errors.js';" })).toEqual(['src/helpers/x.ts:1 unlisted-folder']);
  });

  it('downward imports, packages and text that only looks like an import pass', () => {
    expect(
      check({
        'src/fixtures/with-macvm.ts': "import { startMacVM } from '../machine/start.js';\nimport { test } from 'vitest';\nimport { join } from 'node:path';",
        'src/report/html-script.ts': "export const SCRIPT = `import { x } from '../runner/cli.js';`;\nconst s = \"from '../vm/start.js'\";",
        'src/index.ts': "export { withMacVM } from './fixtures/with-macvm.js';",
      }),
    ).toEqual([]);
  });

  it('finds a cycle in a folder graph and names an import on each step', () => {
    const { imports } = checkLayers(
      new Map([
        ['src/vm/start.ts', "import { connectGuest } from '../guest/session.js';"],
        ['src/guest/session.ts', "import type { Deadline } from '../vm/deadline.js';"],
      ]),
    );
    expect(findCycle(folderGraph(imports))).toEqual(['guest → vm (src/guest/session.ts:1)', 'vm → guest (src/vm/start.ts:1)']);
  });
});
