import { spawn } from 'node:child_process';
import { appendFile, mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { isMacvmError } from '../../src/errors.js';
import { Deadline } from '../../src/shared/deadline.js';
import { startMacVM } from '../../src/machine/start.js';
import { QemuRunningVM } from '../../src/vm/qemu/boot.js';
import { markerScanner, waitForConsoleMarker } from '../../src/vm/qemu/console-watch.js';
import type { Clone, ExitInfo, Image, Provider } from '../../src/vm/types.js';

const MARKER = 'MACVM-READY sshd-listening';

/** Settles-or-not, without waiting on the promise: what a test can check at any moment. */
function track(promise: Promise<unknown>): { state: 'pending' | 'resolved' | 'rejected'; error?: unknown } {
  const seen: { state: 'pending' | 'resolved' | 'rejected'; error?: unknown } = { state: 'pending' };
  promise.then(
    () => (seen.state = 'resolved'),
    (error: unknown) => {
      seen.state = 'rejected';
      seen.error = error;
    },
  );
  return seen;
}

describe('markerScanner', () => {
  it('finds the marker split at every possible point, and not before its last byte', () => {
    const text = `boot noise\r\n${MARKER} uptime=2.31\n`;
    const start = text.indexOf(MARKER);
    for (let cut = 1; cut < text.length; cut++) {
      const scanner = markerScanner(MARKER);
      const first = scanner.push(Buffer.from(text.slice(0, cut)));
      expect(first, `cut at ${cut}`).toBe(cut >= start + MARKER.length);
      expect(scanner.push(Buffer.from(text.slice(cut))), `cut at ${cut}`).toBe(true);
    }
  });

  it('finds it fed one byte at a time, across a multi-byte character', () => {
    const marker = 'prêt ✓';
    const scanner = markerScanner(marker);
    const bytes = Buffer.from(`xx pr${marker}yy`);
    const results = [...bytes].map((byte) => scanner.push(Buffer.from([byte])));
    const end = bytes.indexOf(Buffer.from(marker)) + Buffer.byteLength(marker);
    expect(results.indexOf(true)).toBe(end - 1);
  });

  it('is not fooled by a near miss, and forgets on reset', () => {
    const scanner = markerScanner(MARKER);
    expect(scanner.push(Buffer.from('MACVM-READY sshd-listenin'))).toBe(false);
    expect(scanner.push(Buffer.from('X MACVM-NOT-READY sshd did not listen\n'))).toBe(false);
    scanner.push(Buffer.from('MACVM-READY'));
    scanner.reset();
    expect(scanner.push(Buffer.from(' sshd-listening'))).toBe(false);
  });
});

describe('waitForConsoleMarker', () => {
  let dir: string | undefined;
  afterEach(async () => dir && rm(dir, { recursive: true, force: true }));
  const logIn = async () => join((dir = await mkdtemp(join(tmpdir(), 'macvm-watch-'))), 'console.log');

  it('reports the marker once its last piece is appended, however the writes split it', async () => {
    const file = await logIn();
    await writeFile(file, '[    0.000000] Linux version 6.1\n');
    const seen = track(waitForConsoleMarker(file, MARKER, { pollMs: 5 }));
    for (const piece of ['Run /sbin/init\nMACVM-RE', 'ADY sshd', '-listenin']) {
      await appendFile(file, piece);
      await sleep(30); // room for the watch and the poll to look (and wrongly report, if they would)
      expect(seen.state).toBe('pending');
    }
    await appendFile(file, 'g uptime=2.31\n');
    await expect.poll(() => seen.state).toBe('resolved');
  });

  it('finds a marker that straddles two reads of a long log', async () => {
    const file = await logIn();
    // The watcher reads 64 KiB at a time: the marker starts 5 bytes before that boundary.
    await writeFile(file, 'x'.repeat(64 * 1024 - 5) + MARKER + '\n');
    await expect(waitForConsoleMarker(file, MARKER)).resolves.toBeUndefined();
  });

  it('waits for a log that does not exist yet', async () => {
    const file = await logIn();
    const seen = track(waitForConsoleMarker(file, MARKER, { pollMs: 5 }));
    await sleep(20);
    expect(seen.state).toBe('pending');
    await writeFile(file, `${MARKER}\n`);
    await expect.poll(() => seen.state).toBe('resolved');
  });

  it('reads a log that shrank again from its start', async () => {
    const file = await logIn();
    await writeFile(file, 'a long first boot that never got ready\n'.repeat(50));
    const seen = track(waitForConsoleMarker(file, MARKER, { pollMs: 5 }));
    await sleep(20);
    await truncate(file, 0);
    await sleep(20);
    await appendFile(file, `${MARKER}\n`);
    await expect.poll(() => seen.state).toBe('resolved');
  });

  it('stops with the signal’s reason when aborted', async () => {
    const file = await logIn();
    await writeFile(file, 'no marker here\n');
    const stop = new AbortController();
    const waiting = waitForConsoleMarker(file, MARKER, { signal: stop.signal, pollMs: 5 });
    stop.abort(new Error('given up'));
    await expect(waiting).rejects.toThrow('given up');
  });
});

describe('QemuRunningVM.endpoint with a ready marker', () => {
  let dir: string | undefined;
  afterEach(async () => dir && rm(dir, { recursive: true, force: true }));

  async function fakeVm(exited: Promise<ExitInfo>) {
    dir = await mkdtemp(join(tmpdir(), 'macvm-endpoint-'));
    const clone = { id: 'vm-test', runtimeDir: dir } as unknown as Clone;
    const record = { ssh: { host: '127.0.0.1', port: 2222 } } as never;
    const vm = new QemuRunningVM(clone, record, join(dir, 'qmp.sock'), exited, undefined, undefined, MARKER);
    return { vm, log: join(dir, 'console.log') };
  }

  it('hands out the endpoint once the marker is on the console', async () => {
    const { vm, log } = await fakeVm(new Promise(() => {}));
    await writeFile(log, 'booting\n');
    const seen = track(vm.endpoint(new Deadline(60_000)));
    await sleep(30);
    expect(seen.state).toBe('pending');
    await appendFile(log, `${MARKER} uptime=1.0\n`);
    await expect.poll(() => seen.state).toBe('resolved');
    await expect(vm.endpoint(new Deadline(60_000))).resolves.toEqual({ host: '127.0.0.1', port: 2222 });
  });

  it('fails with MACVM_VM_STOPPED as soon as the VM exits without the marker', async () => {
    let exit!: (info: ExitInfo) => void;
    const { vm, log } = await fakeVm(new Promise((resolve) => (exit = resolve)));
    await writeFile(log, 'Kernel panic - not syncing\n');
    const waiting = vm.endpoint(new Deadline(60_000));
    exit({ code: 1, signal: null });
    const error = await waiting.catch((e: unknown) => e);
    expect(isMacvmError(error, 'MACVM_VM_STOPPED')).toBe(true);
  });

  it('fails with the deadline’s own error when the marker never comes', async () => {
    const { vm, log } = await fakeVm(new Promise(() => {}));
    await writeFile(log, 'still booting\n');
    const deadline = new Deadline(50);
    deadline.enter('address');
    const error = await vm.endpoint(deadline).catch((e: unknown) => e);
    expect(isMacvmError(error, 'MACVM_DEADLINE_EXCEEDED')).toBe(true);
    expect((error as Error).message).toMatch(/step "address"/);
  });
});

describe('startMacVM through the marker watch', () => {
  let dir: string | undefined;
  afterEach(async () => dir && rm(dir, { recursive: true, force: true }));

  /** A provider whose VM is a real QemuRunningVM over a console log the test writes, with no qemu behind it. */
  async function provider(console: string, exited: Promise<ExitInfo>): Promise<Provider> {
    dir = await mkdtemp(join(tmpdir(), 'macvm-start-'));
    const runtimeDir = join(dir, 'vm');
    const image: Image = { name: 'fake', provider: 'qemu', location: dir, os: 'linux', arch: 'x86_64', ssh: { user: 'root', password: 'x' }, facts: {} };
    return {
      name: 'qemu',
      prepare: async () => image,
      clone: async () => {
        const { mkdir } = await import('node:fs/promises');
        await mkdir(runtimeDir);
        const clone: Clone = {
          id: 'vm-fake',
          image,
          runtimeDir,
          boot: async () => {
            await writeFile(join(runtimeDir, 'console.log'), console);
            return new QemuRunningVM(clone, { ssh: { host: '127.0.0.1', port: 1 } } as never, join(runtimeDir, 'qmp.sock'), exited, undefined, undefined, MARKER);
          },
          destroy: async () => rm(runtimeDir, { recursive: true, force: true }),
        };
        return clone;
      },
    };
  }

  it('a VM that exits before its marker fails at once with MACVM_BOOT_FAILED and the console tail', async () => {
    let exit!: (info: ExitInfo) => void;
    const fake = await provider('Run /init\nKernel panic - not syncing: No working init found.\n', new Promise((resolve) => (exit = resolve)));
    const starting = startMacVM({ image: 'fake', provider: fake, deadline: 60_000, onBooted: () => setTimeout(() => exit({ code: 0, signal: null }), 20) });
    const error = await starting.catch((e: unknown) => e);
    expect(isMacvmError(error, 'MACVM_BOOT_FAILED')).toBe(true);
    expect((error as Error).message).toMatch(/Kernel panic - not syncing/);
  });

  it('a marker that never comes ends in the deadline error naming the address step, with the console tail', async () => {
    const fake = await provider('Run /init\nstill starting services\n', new Promise(() => {}));
    const error = await startMacVM({ image: 'fake', provider: fake, deadline: 300 }).catch((e: unknown) => e);
    expect(isMacvmError(error, 'MACVM_DEADLINE_EXCEEDED')).toBe(true);
    expect((error as { details: Record<string, unknown> }).details.step).toBe('address');
    expect((error as Error).message).toMatch(/still starting services/);
  });
});

describe('waiting keeps the process alive', () => {
  it('a script that only awaits the marker is not ended early by an empty event loop', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'macvm-alive-'));
    try {
      const file = join(dir, 'console.log');
      await writeFile(file, 'booting\n');
      // The child starts waiting with nothing else pending, says so, and only then is the
      // marker appended: an unref'd watch would let it exit (code 13) before that.
      const script = `import { waitForConsoleMarker } from ${JSON.stringify(new URL('../../src/vm/qemu/console-watch.ts', import.meta.url).pathname)};
const seen = waitForConsoleMarker(${JSON.stringify(file)}, ${JSON.stringify(MARKER)});
console.log('waiting');
await seen;
console.log('seen');`;
      const proc = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      let stdout = '';
      const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
      await new Promise<void>((resolve) =>
        proc.stdout.on('data', (data: Buffer) => {
          stdout += String(data);
          if (stdout.includes('waiting')) resolve();
        }).on('end', () => resolve()),
      );
      await appendFile(file, `${MARKER}\n`);
      expect({ code: await exited, stdout }).toEqual({ code: 0, stdout: 'waiting\nseen\n' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
