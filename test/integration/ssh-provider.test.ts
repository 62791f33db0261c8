import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isMacvmError, type MacvmErrorCode } from '../../src/errors.js';
import { homePaths } from '../../src/vm/home.js';
import { readVmRecord } from '../../src/vm/runtime-dir.js';
import { createSshProvider, type SshProviderSettings } from '../../src/vm/ssh/provider.js';
import { startMacVM } from '../../src/machine/start.js';
import { sshProviderSettings, startSshd } from '../support/sshd.js';

// The lifecycle (loadProvider from settings, exec, files, forward, gc, attach from another
// process) is the shared contract: provider-contract-ssh.test.ts. Here: what only ssh does.
// The "machine" the ssh provider attaches to is this host, through a REAL OpenSSH sshd
// with its own host key on 127.0.0.1; MACVM_HOME is a temp dir so runtime dirs are ours.
let sshd: Awaited<ReturnType<typeof startSshd>>;
let home: string;
let settings: SshProviderSettings;
const savedHome = process.env.MACVM_HOME;

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), 'macvm-ssh-provider-'));
  process.env.MACVM_HOME = home;
  sshd = await startSshd();
  settings = sshProviderSettings(sshd);
});

afterAll(async () => {
  await sshd?.stop();
  if (savedHome === undefined) delete process.env.MACVM_HOME;
  else process.env.MACVM_HOME = savedHome;
  rmSync(home, { recursive: true, force: true });
});

function runtimeDirs(): string[] {
  return existsSync(homePaths().run) ? readdirSync(homePaths().run) : [];
}

async function expectCode(work: Promise<unknown>, code: MacvmErrorCode) {
  const error = await work.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isMacvmError(error) ? error.code : error).toBe(code);
  return error as Error;
}

describe('ssh provider over a real OpenSSH server', () => {
  it('attaches with no clone and no boot, tracks the suite in a vm.json record, and leaves the machine running', async () => {
    const vm = await startMacVM({ image: 'lab-mini-3', provider: createSshProvider(settings), deadline: 30_000 });
    const dir = homePaths().vm(vm.id);
    try {
      expect(vm.facts).toMatchObject({ provider: 'ssh', image: 'lab-mini-3', os: 'linux', arch: 'x86_64' });
      expect((await vm.sh`echo attached-${'ok'}`).stdout.trim()).toBe('attached-ok');
      const record = await readVmRecord(dir);
      expect(record).toMatchObject({ id: vm.id, provider: 'ssh', image: 'lab-mini-3', ssh: { host: sshd.host, port: sshd.port } });
      expect(record?.pid).toBeUndefined();
      await expectCode(vm.screenshot(), 'MACVM_NOT_SUPPORTED');
    } finally {
      await vm.dispose();
    }
    expect(existsSync(dir)).toBe(false);
    // Nothing was shut down on the machine: a second attachment works.
    const again = await startMacVM({ image: '', provider: createSshProvider(settings), deadline: 30_000 });
    try {
      expect(again.facts.image).toBe(`${sshd.user}@${sshd.host}:${sshd.port}`);
      expect((await again.exec('true')).exitCode).toBe(0);
    } finally {
      await again.dispose();
    }
  });

  it('refuses a missing host key before connecting, with the ssh-keyscan hint, and leaves no runtime dir', async () => {
    const before = runtimeDirs();
    const error = await expectCode(startMacVM({ image: 'x', provider: createSshProvider({ ...settings, hostKey: '' }), deadline: 30_000 }), 'MACVM_CONFIG_INVALID');
    expect(error.message).toContain(`ssh-keyscan -t ed25519 -p ${sshd.port} ${sshd.host}`);
    expect(runtimeDirs()).toEqual(before);
  });

  it('refuses a machine presenting another host key than the pinned one (MACVM_HOST_KEY_MISMATCH) and removes its runtime dir', async () => {
    const keyDir = mkdtempSync(join(tmpdir(), 'macvm-other-key-'));
    try {
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(keyDir, 'other')]);
      const otherKey = readFileSync(join(keyDir, 'other.pub'), 'utf8').trim();
      const before = runtimeDirs();
      await expectCode(startMacVM({ image: 'x', provider: createSshProvider({ ...settings, hostKey: otherKey }), deadline: 30_000 }), 'MACVM_HOST_KEY_MISMATCH');
      expect(runtimeDirs()).toEqual(before);
    } finally {
      rmSync(keyDir, { recursive: true, force: true });
    }
  });
});
