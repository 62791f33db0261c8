import { mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ensureVmhostBinary, hasVirtualizationEntitlement } from '../../src/vm/vz/vmhost-binary.js';

const fakeCodesign = join(import.meta.dirname, '..', 'fixtures', 'vz', 'fake-codesign.mjs');

const XML = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>com.apple.security.virtualization</key>
	<true/>
</dict>
</plist>`;

describe('codesign entitlement output', () => {
  it('contract: finds the entitlement in the XML plist codesign prints', () => {
    expect(hasVirtualizationEntitlement(`Executable=/x/node\n${XML}`)).toBe(true);
    expect(hasVirtualizationEntitlement(XML.replace('<true/>', '<false/>'))).toBe(false);
    expect(hasVirtualizationEntitlement(XML.replace('virtualization', 'hypervisor'))).toBe(false);
  });

  it('contract: finds it in the bracketed dump newer codesign prints', () => {
    const dump = 'Executable=/x/node\n[Dict]\n\t[Key] com.apple.security.virtualization\n\t[Value]\n\t\t[Bool] true\n';
    expect(hasVirtualizationEntitlement(dump)).toBe(true);
    expect(hasVirtualizationEntitlement(dump.replace('true', 'false'))).toBe(false);
  });
});

describe('ensureVmhostBinary', { timeout: 30_000 }, () => {
  let home: string;
  let source: string;
  beforeEach(async () => {
    home = await mkdtemp(join(tmpdir(), 'macvm-vmhost-bin-'));
    source = join(home, 'source-node');
    await writeFile(source, 'pretend node binary', { mode: 0o755 });
  });
  afterEach(async () => {
    await rm(home, { recursive: true, force: true });
  });
  const run = (fix: boolean) => ensureVmhostBinary({ fix, home, sourceNode: source, codesign: fakeCodesign, platform: 'darwin' });

  it('reports "not on macOS" without touching anything elsewhere', async () => {
    const status = await ensureVmhostBinary({ home, platform: 'linux' });
    expect(status).toMatchObject({ ok: false, fixed: false, problem: expect.stringMatching(/macOS/) });
  });

  it('contract: without --fix, reports the missing binary; with it, copies, signs with the entitlements file, and verifies', async () => {
    const log = join(home, 'codesign.log');
    process.env.FAKE_CODESIGN_LOG = log;
    try {
      expect(await run(false)).toMatchObject({ ok: false, problem: expect.stringMatching(/does not exist/) });
      const fixed = await run(true);
      expect(fixed).toMatchObject({ ok: true, fixed: true, path: join(home, 'vmhost', 'node') });
      expect(await readFile(fixed.path, 'utf8')).toBe('pretend node binary');
      expect((await stat(fixed.path)).mode & 0o777).toBe(0o755);
      const invocations = (await readFile(log, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as string[]);
      expect(invocations[0]![0]).toBe('--sign');
      expect(invocations).toContainEqual(['--sign', '-', '--entitlements', expect.stringMatching(/native\/vmhost\.entitlements$/), '--force', fixed.path]);
      expect(invocations.at(-1)).toEqual(['-d', '--entitlements', ':-', fixed.path]);
      // and now it is fine as is
      expect(await run(false)).toMatchObject({ ok: true, fixed: false });
    } finally {
      delete process.env.FAKE_CODESIGN_LOG;
    }
  });

  it('contract: a node upgrade (changed source) makes the copy stale', async () => {
    await run(true);
    await utimes(source, new Date(), new Date(Date.now() + 60_000));
    expect(await run(false)).toMatchObject({ ok: false, problem: expect.stringMatching(/another node/) });
  });

  it('contract: a copy whose signature lost the entitlement is reported', async () => {
    const { path } = await run(true);
    await writeFile(`${path}.fake-signature`, XML.replace('<true/>', '<false/>'));
    expect(await run(false)).toMatchObject({ ok: false, problem: expect.stringMatching(/lacks the com\.apple\.security\.virtualization/) });
  });
});
