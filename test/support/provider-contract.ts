/**
 * The shared provider contract (issue #13): the same lifecycle checks for every provider, real
 * (qemu, ssh) or a stand-in replaying the real tool's formats (vz, tart, orchard). Each provider's
 * test file gives a harness — how to set up its world, which image and settings to use, how to
 * tell that its VM is gone — and calls describeProviderContract():
 *
 *   start + exec    startMacVM → exec returns stdout, stderr and the exit code
 *   files           upload then download round-trips random bytes
 *   forward         the guest reaches a host port through vm.exposeHostPort
 *   stop            the VM's process / remote VM is gone, checked with the provider's own eyes
 *   dispose         leaves no runtime dir and nothing of the clone; a second dispose is a no-op
 *   gc              removes what a dead session left (its runner died, the VM kept running)
 *   attach          a VM started detached (as `macvm vm start` does) is reached by id from
 *                   another process — the CLI from the sources: vm exec, vm stop, vm rm
 *   restart         vm.restart() boots the same clone in a new VM process: what the guest
 *                   wrote to its disk is there, forwards keep their ports; a provider that
 *                   cannot boot a machine again refuses with MACVM_NOT_SUPPORTED
 *
 * A check a provider cannot have is skipped with the reason, never dropped silently.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { MacVM } from '../../src/machine/macvm.js';
import { startMacVM, type StartMacVMOptions } from '../../src/machine/start.js';
import { sweepDeadSessions } from '../../src/runner/gc.js';
import { homePaths } from '../../src/vm/home.js';
import { readVmRecord, type VmRecord } from '../../src/vm/runtime-dir.js';
import type { Provider, ProviderName, RunningVM } from '../../src/vm/types.js';
import { registerDeadSession } from './dead-session.js';
import { macvmFromSources } from './run-macvm.js';

/** One provider's world, set up once per test file. */
export interface ContractWorld {
  /** The image name startMacVM and the CLI are given. */
  image: string;
  /** The provider startMacVM boots with; `detached` as `macvm vm start` makes it. */
  provider(options: { detached: boolean }): Promise<Provider>;
  /** More startMacVM options (cpus, memory, deadline). */
  startOptions?: Partial<StartMacVMOptions>;
  /** macvm.config.ts for another process (the CLI), as a user writes it for this provider. */
  config: Record<string, unknown>;
  /** What another process's environment needs beyond MACVM_HOME (the stand-in tool on PATH). */
  env?: NodeJS.ProcessEnv;
  /**
   * True once the VM no longer runs, asked the provider's way: its process is gone, or the
   * stand-in reports it stopped or deleted. Absent: the provider never stops a machine.
   */
  stopped?(record: VmRecord): Promise<boolean>;
  /** True once nothing of the clone is left outside its runtime dir (tart's own record, the controller's VM). */
  removed?(record: VmRecord): Promise<boolean>;
  /** Ends what setup started (servers, stand-ins) and removes its files. */
  teardown(): Promise<void>;
}

export interface ProviderContractHarness {
  setup(): Promise<ContractWorld>;
  /** Per test; a real VM on a loaded 2-core host needs minutes, a stand-in seconds. */
  timeoutMs: number;
  /** The whole contract cannot run on this host, and why. */
  skipAll?: string;
  /** Checks the provider truly cannot have, with the reason. */
  skip?: { stop?: string };
  /** Why vm.restart() must refuse on this provider; absent: it restarts. */
  noRestart?: string;
}

const GC_SESSION = 'contract-dead-runner';

export function describeProviderContract(name: ProviderName, harness: ProviderContractHarness): void {
  describe.skipIf(Boolean(harness.skipAll))(`${name} provider contract${harness.skipAll ? ` (skipped: ${harness.skipAll})` : ''}`, { timeout: harness.timeoutMs }, () => {
    let world: ContractWorld;
    let scratch: string;
    const started: MacVM[] = [];

    beforeAll(async () => {
      world = await harness.setup();
      scratch = await mkdtemp(join(tmpdir(), `macvm-contract-${name}-`));
    }, harness.timeoutMs);

    afterEach(async () => {
      for (const vm of started.splice(0)) await vm.dispose().catch(() => {});
    });

    afterAll(async () => {
      await world?.teardown();
      if (scratch) await rm(scratch, { recursive: true, force: true });
    }, harness.timeoutMs);

    /** startMacVM with the world's provider; `running` is the provider's RunningVM underneath. */
    async function start(options: Partial<StartMacVMOptions> & { detached?: boolean } = {}): Promise<{ vm: MacVM; running: RunningVM; dir: string; record: VmRecord }> {
      let running: RunningVM | undefined;
      const vm = await startMacVM({
        image: world.image,
        provider: await world.provider({ detached: options.detached ?? false }),
        ...world.startOptions,
        ...options,
        onBooted: (booted) => (running = booted),
      });
      started.push(vm);
      const dir = homePaths().vm(vm.id);
      const record = await readVmRecord(dir);
      expect(record, `vm.json in ${dir}`).toMatchObject({ id: vm.id, provider: name });
      return { vm, running: running!, dir, record: record! };
    }

    const runtimeDirs = () => readdir(homePaths().run).catch(() => [] as string[]);

    it(`contract: startMacVM boots a VM (${name}) whose exec returns stdout, stderr and the exit code`, async () => {
      const { vm } = await start();
      expect(vm.facts).toMatchObject({ id: vm.id, provider: name, image: world.image });
      const ok = await vm.exec('echo "out $((6*7))"; echo err >&2');
      expect(ok).toMatchObject({ stdout: 'out 42', stderr: 'err', exitCode: 0 });
      expect((await vm.exec('exit 3', { reject: false })).exitCode).toBe(3);
      await expect(vm.exec('exit 4')).rejects.toMatchObject({ code: 'MACVM_EXEC_FAILED' });
    });

    it('contract: files: upload then download round-trips the bytes', async () => {
      const { vm } = await start();
      const data = randomBytes(256 * 1024);
      const sha = createHash('sha256').update(data).digest('hex');
      const local = join(scratch, `up-${vm.id}.bin`);
      const back = join(scratch, `down-${vm.id}.bin`);
      const remote = `/tmp/macvm-contract-${vm.id}.bin`;
      await writeFile(local, data);
      await vm.upload(local, remote);
      expect((await vm.exec(`sha256sum ${remote}`)).stdout.split(' ')[0]).toBe(sha);
      await vm.download(remote, back);
      expect(createHash('sha256').update(await readFile(back)).digest('hex')).toBe(sha);
      await vm.exec(`rm -f ${remote}`);
    });

    it('contract: forward: the guest reaches a host port through vm.exposeHostPort', async () => {
      const { vm } = await start();
      const token = `from-the-host-${randomBytes(4).toString('hex')}`;
      const server = createServer((_req, res) => res.end(token));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      try {
        const hostPort = (server.address() as { port: number }).port;
        const guestPort = await vm.exposeHostPort(hostPort);
        expect((await vm.exec(`wget -qO- http://127.0.0.1:${guestPort}/`)).stdout).toBe(token);
      } finally {
        server.close();
      }
    });

    it('contract: forward: a guest connection to an exposed host port nothing listens on is named once, on stderr', async () => {
      const { vm } = await start();
      const server = createServer();
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const hostPort = (server.address() as { port: number }).port;
      await new Promise<void>((resolve) => server.close(() => resolve()));
      const guestPort = await vm.exposeHostPort(hostPort);
      const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
      try {
        // -t 1: GNU wget (the ssh provider's machine) would retry a connection closed unanswered 20 times.
        for (let i = 0; i < 2; i++) expect((await vm.exec(`wget -t 1 -qO- http://127.0.0.1:${guestPort}/`, { reject: false })).exitCode).not.toBe(0);
        const told = stderr.mock.calls.map(([text]) => String(text)).filter((text) => text.includes(`vm.exposeHostPort(${hostPort})`));
        expect(told).toHaveLength(1);
        expect(told[0]).toContain(`found nothing listening on 127.0.0.1:${hostPort} on this host (ECONNREFUSED)`);
      } finally {
        stderr.mockRestore();
      }
    });

    it.skipIf(Boolean(harness.skip?.stop))(`contract: stop: the VM is gone afterwards, as the provider itself reports${harness.skip?.stop ? ` (skipped: ${harness.skip.stop})` : ''}`, async () => {
      const { vm, running, record } = await start();
      expect(await world.stopped!(record)).toBe(false);
      // stop() resolves once the VM is gone: asked right away, the provider must agree.
      await running.stop({ gracefulMs: 5_000 });
      expect(await world.stopped!(record)).toBe(true);
      await running.exited;
      await expect(vm.exec('true')).rejects.toMatchObject({ code: expect.stringMatching(/^MACVM_(VM_STOPPED|SESSION_CLOSED|SSH_CONNECT_FAILED)$/) });
    });

    if (harness.noRestart) {
      it(`contract: restart is refused with MACVM_NOT_SUPPORTED (${harness.noRestart}), and the VM stays usable`, async () => {
        const { vm } = await start();
        await expect(vm.restart()).rejects.toMatchObject({ code: 'MACVM_NOT_SUPPORTED', message: expect.stringContaining(`vm.restart() cannot restart VM ${vm.id}: `) });
        expect((await vm.exec('echo still here')).stdout).toBe('still here');
      });
    } else {
      it('contract: restart boots the same clone in a new VM process: the disk keeps what the guest wrote, forwards keep their ports', async () => {
        const { vm, dir, record } = await start();
        const token = `kept-${randomBytes(4).toString('hex')}`;
        const server = createServer((_req, res) => res.end(token));
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        try {
          const file = `$HOME/macvm-restart-${vm.id}`;
          await vm.exec(`echo ${token} > ${file}`);
          const guestPort = await vm.exposeHostPort((server.address() as { port: number }).port);
          // The guest's own SSH server, as the guest sees it: the forward's far end.
          const forward = await vm.forwardGuestPort(22, { guestHost: vm.session.host });
          const times = await vm.restart();
          expect(times.readyMs).toBeGreaterThanOrEqual(times.bootMs);
          const after = await readVmRecord(dir);
          expect(after?.pid, 'a new VM process').toBeDefined();
          expect(after?.pid).not.toBe(record.pid);
          expect((await vm.exec(`cat ${file}; rm -f ${file}`)).stdout).toBe(token);
          expect((await vm.exec(`wget -t 1 -qO- http://127.0.0.1:${guestPort}/`)).stdout).toBe(token);
          expect(await sshBanner(forward.port)).toMatch(/^SSH-2\.0-/);
        } finally {
          server.close();
        }
      });
    }

    it('contract: dispose leaves no runtime dir and nothing of the clone; a second dispose is a no-op', async () => {
      const { vm, dir, record } = await start();
      expect(existsSync(dir)).toBe(true);
      await vm.dispose();
      expect(existsSync(dir)).toBe(false);
      if (world.stopped) expect(await world.stopped(record)).toBe(true);
      if (world.removed) expect(await world.removed(record)).toBe(true);
      await vm.dispose();
      expect(await runtimeDirs()).not.toContain(vm.id);
      await expect(vm.exec('true')).rejects.toMatchObject({ code: 'MACVM_SESSION_CLOSED' });
    });

    it('contract: gc removes what a dead session left: the VM stops, the clone and runtime dir go', async () => {
      const session = await registerDeadSession(GC_SESSION);
      // The runner "died" with its VM booted: its SSH connection closes, nothing else happens.
      const { vm, dir, record } = await start({ session });
      expect(record.session).toBe(GC_SESSION);
      await vm.session.close();
      if (world.stopped) expect(await world.stopped(record)).toBe(false);

      const report = await sweepDeadSessions();
      expect(report.removed).toEqual(expect.arrayContaining([expect.objectContaining({ kind: 'vm', id: vm.id }), expect.objectContaining({ kind: 'session', id: GC_SESSION })]));
      expect(existsSync(dir)).toBe(false);
      if (world.stopped) expect(await world.stopped(record)).toBe(true);
      if (world.removed) expect(await world.removed(record)).toBe(true);
    });

    it('contract: attach from another process: a detached VM is reached by id with `macvm vm exec`, `vm stop`, `vm rm`', async () => {
      // Started as `macvm vm start` starts it, then this process lets go of it.
      const { vm, running, dir, record } = await start({ detached: true });
      expect(record.detached).toBe(true);
      await vm.session.close();
      // orchard: the port-forward listener of the starting process closes, as it does when the CLI exits.
      await (running as RunningVM & { disconnect?: () => Promise<void> }).disconnect?.();

      const project = join(scratch, `project-${vm.id}`);
      await mkdir(project);
      await writeFile(join(project, 'macvm.config.ts'), `export default ${JSON.stringify(world.config, null, 2)};\n`);
      const macvm = (...args: string[]) => macvmFromSources(args, { cwd: project, env: { ...world.env, MACVM_HOME: process.env.MACVM_HOME }, timeoutMs: Math.min(harness.timeoutMs / 3, 120_000) });

      const exec = await macvm('vm', 'exec', vm.id, '--', 'sh', '-c', 'echo "in the guest $((6*7))"; echo oops >&2; exit 3');
      expect(exec.stdout, exec.stderr).toBe('in the guest 42\n');
      expect(exec.stderr).toContain('oops\n');
      expect(exec.code).toBe(3);

      const stopped = await macvm('vm', 'stop', vm.id);
      expect(stopped.code, stopped.stderr).toBe(0);
      expect(stopped.stdout).toContain(vm.id);
      if (world.stopped) expect(await world.stopped(record)).toBe(true);
      expect(existsSync(dir)).toBe(true); // stop keeps the clone; rm deletes it

      const removed = await macvm('vm', 'rm', vm.id);
      expect(removed, removed.stderr).toMatchObject({ code: 0, stdout: `${vm.id} removed\n` });
      expect(existsSync(dir)).toBe(false);
      if (world.removed) expect(await world.removed(record)).toBe(true);
    });
  });
}

/** The first line a server sends on 127.0.0.1:<port> (an SSH server's version banner). */
function sshBanner(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    socket.setTimeout(10_000, () => socket.destroy(new Error(`no banner on 127.0.0.1:${port} within 10 s`)));
    socket.once('data', (data) => {
      resolve(String(data).split('\r\n')[0]!);
      socket.destroy();
    });
    socket.once('error', reject);
  });
}
