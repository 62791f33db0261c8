/**
 * GuestSession against a REAL OpenSSH sshd on 127.0.0.1 (test/support/sshd.ts).
 * The "guest" is this machine, so the test can also look at the guest side
 * directly (/proc, local servers) to check what the session claims.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmod, lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { isMacvmError, type MacvmError } from '../../src/errors.js';
import { connectGuest } from '../../src/guest/session.js';
import type { GuestSession } from '../../src/guest/types.js';
import { MacVM, type VmFacts } from '../../src/machine/macvm.js';
import type { RunningVM } from '../../src/vm/types.js';
import { Deadline } from '../../src/shared/deadline.js';
import { freePort, prepareSshd, startSshd, type Sshd } from '../support/sshd.js';
import { macvmErrorOf as thrown } from '../support/macvm-error.js';
import { refusesConnections } from '../support/ports.js';

let sshd: Sshd;
let session: GuestSession;
let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'macvm-guest-session-'));
  sshd = await startSshd();
  session = await connectGuest({ host: sshd.host, port: sshd.port, credentials: sshd.credentials });
});

afterAll(async () => {
  await session?.close();
  await sshd?.stop();
  await rm(work, { recursive: true, force: true });
});


/** PIDs of live (non-zombie) processes whose command line contains `text`. */
async function processesWith(text: string): Promise<number[]> {
  const found: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    const cmdline = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.replaceAll('\0', ' ').includes(text)) found.push(Number(name));
  }
  return found;
}

/** Polls until no such process is left (killing is asynchronous); returns what is left. */
async function waitUntilGone(text: string): Promise<number[]> {
  for (let i = 0; i < 50; i++) {
    const left = await processesWith(text);
    if (left.length === 0) return left;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return processesWith(text);
}

/** A sleep command no other process on the machine runs: its duration is the marker. */
function uniqueSleep(): string {
  return `sleep 300.${randomBytes(4).readUInt32BE(0)}`;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function listen(server: Server | HttpServer): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

describe('exec', () => {
  test('stdout, stderr and the exit code; a non-zero exit rejects with a rich MACVM_EXEC_FAILED by default', async () => {
    const result = await session.exec('printf out; printf "err1\\nerr2\\n" >&2; exit 3', { reject: false });
    expect(result).toMatchObject({ stdout: 'out', stderr: 'err1\nerr2', exitCode: 3, signal: null, failed: true, timedOut: false });

    const error = await thrown(() => session.exec('echo boom >&2; exit 7'));
    expect(error.code).toBe('MACVM_EXEC_FAILED');
    expect(error.message).toContain('exit code 7');
    expect(error.message).toContain('echo boom >&2; exit 7');
    expect(error.message).toContain('boom');
    expect(error.details).toMatchObject({ exitCode: 7, stderr: 'boom' });
  });

  test('a command that kills itself reports the signal and no exit code', async () => {
    const result = await session.exec('kill -TERM $$', { reject: false });
    expect(result.exitCode).toBeNull();
    expect(result.signal).toBe('SIGTERM');
    expect(result.failed).toBe(true);
  });

  test('a timeout kills the remote process and rejects with the partial output', async () => {
    const marker = uniqueSleep();
    const error = await thrown(() => session.exec(`echo before; echo half >&2; exec ${marker}`, { timeoutMs: 1_500 }));
    expect(error.code).toBe('MACVM_EXEC_TIMEOUT');
    expect(error.details).toMatchObject({ stdout: 'before', stderr: 'half', timeoutMs: 1_500, timedOut: true });
    expect(await waitUntilGone(marker)).toEqual([]);
  });

  test('with reject: false a timeout is a result with timedOut set', async () => {
    const marker = uniqueSleep();
    const result = await session.exec(`${marker}; echo not reached`, { timeoutMs: 1_000, reject: false });
    expect(result).toMatchObject({ timedOut: true, failed: true });
    expect(await waitUntilGone(marker)).toEqual([]);
  });

  test('an AbortSignal kills the remote process and rejects with its reason', async () => {
    const marker = uniqueSleep();
    const controller = new AbortController();
    const reason = new Error('stopped by the test');
    const running = session.exec(`echo started; exec ${marker}`, {
      signal: controller.signal,
      onStdout: (chunk) => {
        if (chunk.includes('started')) controller.abort(reason);
      },
    });
    await expect(running).rejects.toBe(reason);
    expect(await waitUntilGone(marker)).toEqual([]);
  });

  test('output streams while the command runs: the command waits for a file the test writes on its first line', async () => {
    const flag = join(work, `go-${randomUUID()}`);
    const chunks: string[] = [];
    let wrote: Promise<void> | undefined;
    const result = await session.exec(`echo first; while [ ! -e ${flag} ]; do sleep 0.1; done; echo second; echo on-stderr >&2`, {
      timeoutMs: 60_000,
      onStdout: (chunk) => {
        chunks.push(chunk);
        if (chunks.join('').includes('first') && !wrote) wrote = session.writeFile(flag, 'go');
      },
      onStderr: (chunk) => chunks.push(`[stderr]${chunk}`),
    });
    await wrote;
    expect(result.stdout).toBe('first\nsecond');
    expect(chunks.join('')).toBe('first\nsecond\n[stderr]on-stderr\n');
  });

  test('env, cwd and stdin reach the command, quoted however nasty', async () => {
    const dir = join(work, "a dir with 'quotes' & $(spaces)");
    await mkdir(dir);
    const stdin = Buffer.from('line 1\nbinary \u00ff\u0000 end\n', 'utf8');
    const result = await session.exec('pwd; printf "%s|" "$MACVM_A" "$MACVM_B"; cat', {
      cwd: dir,
      env: { MACVM_A: "it's a $(trap) `x` \"y\"", MACVM_B: '' },
      stdin,
    });
    expect(result.stdout).toBe(`${dir}\nit's a $(trap) \`x\` "y"||${stdin.toString('utf8').slice(0, -1)}`);
  });

  test('sh`` quotes every interpolation: nasty strings come back byte-exact', async () => {
    const nasty = ["it's", 'say "hi"', '$(id) `id` ${HOME}', 'two  spaces', 'new\nline\n', '*', '~', '; exit 9', '\\', '-n', '', 'ünï ✓'];
    const result = await session.sh`printf '%s\0' ${nasty} ${42}`;
    expect(result.stdout.split('\0').slice(0, -1)).toEqual([...nasty, '42']);

    const dir = join(work, 'sh with cwd');
    await mkdir(dir);
    expect((await session.shWith({ cwd: dir })`pwd`).stdout).toBe(dir);
    const bad = await thrown(() => session.sh`echo ${undefined}`);
    expect(bad.code).toBe('MACVM_BAD_ARGUMENT');
  });
});

describe('files', () => {
  test('a 10 MB binary file round-trips byte-exact: sha256 checked on both sides, mode kept', async () => {
    const data = randomBytes(10 * 1024 * 1024);
    const local = join(work, 'random.bin');
    await writeFile(local, data);
    await chmod(local, 0o640);
    const remote = join(work, 'guest-side', 'random.bin');
    await session.exec(`mkdir -p ${join(work, 'guest-side')}`);
    await session.upload(local, remote);
    const remoteFacts = await session.sh`sha256sum ${remote} && stat -c %a ${remote}`;
    const [sumLine, mode] = remoteFacts.stdout.split('\n');
    expect(sumLine!.split(' ')[0]).toBe(sha256(data));
    expect(mode).toBe('640');

    const back = join(work, 'downloaded', 'random.bin');
    await session.download(remote, back);
    const downloaded = await readFile(back);
    expect(downloaded.length).toBe(data.length);
    expect(sha256(downloaded)).toBe(sha256(data));
    expect((await stat(back)).mode & 0o777).toBe(0o640);
  });

  test('a directory tree round-trips: nested dirs, empty files, modes, symlinks, odd names', async () => {
    const source = join(work, 'tree');
    await mkdir(join(source, 'sub dir', 'deeper'), { recursive: true });
    await mkdir(join(source, 'empty-dir'));
    await writeFile(join(source, 'top.txt'), 'top\n');
    await writeFile(join(source, 'sub dir', "quote's ünï.txt"), randomBytes(70_000));
    await writeFile(join(source, 'sub dir', 'deeper', 'empty'), '');
    await writeFile(join(source, 'run.sh'), '#!/bin/sh\necho ran\n');
    await chmod(join(source, 'run.sh'), 0o755);
    await chmod(join(source, 'sub dir', 'deeper'), 0o750);
    await symlink('sub dir/deeper/empty', join(source, 'link-to-empty'));

    const remote = join(work, 'tree-in-guest');
    await session.upload(source, remote);
    // The guest's own view (find runs in the guest) must match what was sent.
    const listing = await session.sh`cd ${remote} && find . -mindepth 1 -printf '%P %y %m\n' | LC_ALL=C sort`;
    expect(listing.stdout).toBe(await findStyleListing(source));
    expect((await session.sh`${join(remote, 'run.sh')}`).stdout).toBe('ran');

    const back = join(work, 'tree-back');
    await session.download(remote, back);
    expect(await describeTree(back)).toEqual(await describeTree(source));
  });

  test('a tree of many files goes several at a time and comes back whole; one that cannot be written fails naming it', async () => {
    const source = join(work, 'many');
    for (const dir of ['a', 'b', join('b', 'c')]) {
      await mkdir(join(source, dir), { recursive: true });
      for (let i = 0; i < 20; i++) await writeFile(join(source, dir, `f${i}.txt`), `${dir} ${i}\n`.repeat(i * 50));
    }
    const remote = join(work, 'many-in-guest');
    await session.upload(source, remote);
    const back = join(work, 'many-back');
    await session.download(remote, back);
    expect(await describeTree(back)).toEqual(await describeTree(source));

    // A directory where the tree has a file: that one file fails, and the error names it.
    const blocked = join(work, 'many-blocked');
    await mkdir(join(blocked, 'b', 'f7.txt'), { recursive: true });
    const error = await thrown(() => session.upload(source, blocked));
    expect(error.code).toBe('MACVM_TRANSFER_FAILED');
    expect(error.message).toContain(join(blocked, 'b', 'f7.txt'));
  });

  test('writeFile/readFile with a mode; a missing path fails with MACVM_TRANSFER_FAILED naming it', async () => {
    const remote = join(work, 'written.bin');
    const data = randomBytes(4096);
    await session.writeFile(remote, data, { mode: 0o600 });
    expect((await session.readFile(remote)).equals(data)).toBe(true);
    expect((await session.sh`stat -c %a ${remote}`).stdout).toBe('600');

    const missing = join(work, 'no', 'such', 'file');
    for (const attempt of [() => session.readFile(missing), () => session.download(missing, join(work, 'x')), () => session.upload(missing, join(work, 'y'))]) {
      const error = await thrown(attempt);
      expect(error.code).toBe('MACVM_TRANSFER_FAILED');
      expect(error.message).toContain(missing);
    }
  });

  test('a transfer a file system refused says which side refused, and a VM call does not hold it back waiting for the VM to exit', { timeout: 60_000 }, async () => {
    const missing = join(work, 'not', 'here');
    // A VM whose process never exits, and an exit notice longer than this test: were the
    // errors below taken for a dying connection, the calls would hang until the test times out.
    const running = { exited: new Promise(() => {}) } as unknown as RunningVM;
    const vm = new MacVM({ id: 'macvm-test', provider: 'ssh' } as VmFacts, session, running, undefined, { exitNoticeMs: 10 * 60_000 });
    const upload = await thrown(() => vm.upload(missing, join(work, 'up')));
    expect(upload).toMatchObject({ code: 'MACVM_TRANSFER_FAILED', details: { side: 'host' } });
    expect(upload.hint).toBe(`Check that ${missing} exists on this host and may be read.`);
    const download = await thrown(() => vm.download(missing, join(work, 'down')));
    expect(download).toMatchObject({ code: 'MACVM_TRANSFER_FAILED', details: { side: 'guest' } });
    expect(download.hint).toContain(`guest:${missing}`);
    await session.writeFile(join(work, 'there.txt'), 'there');
    // The "guest" is this machine: there.txt is a file on the host too, so nothing can be written under it.
    const toNowhere = await thrown(() => vm.download(join(work, 'there.txt'), join(work, 'there.txt', 'x')));
    expect(toNowhere).toMatchObject({ code: 'MACVM_TRANSFER_FAILED', details: { side: 'host' } });
    expect(toNowhere.hint).toContain('can be written on this host');
  });
});

describe('forwards', () => {
  test('forwardGuestPort: a host client reaches a guest TCP server through 127.0.0.1:<port>; closed, the port refuses', async () => {
    const echo = createServer({ allowHalfOpen: true }, (socket) => {
      socket.on('error', () => socket.destroy());
      socket.pipe(socket);
    });
    const echoPort = await listen(echo);
    try {
      const forward = await session.forwardGuestPort(echoPort);
      expect(forward.port).not.toBe(echoPort);
      const payload = randomBytes(200_000);
      const echoed = await new Promise<Buffer>((resolve, reject) => {
        const socket = connect(forward.port, '127.0.0.1', () => socket.end(payload));
        const chunks: Buffer[] = [];
        socket.on('data', (chunk: Buffer) => chunks.push(chunk));
        socket.once('end', () => resolve(Buffer.concat(chunks)));
        socket.once('error', reject);
      });
      expect(echoed.equals(payload)).toBe(true);
      await forward.close();
      expect(await refusesConnections(forward.port)).toBe(true);
    } finally {
      echo.close();
    }
  });

  test('forwardHostPort: a guest client reaches a host HTTP server through a guest port; closed, the guest port refuses', async () => {
    const token = randomUUID();
    const seen: string[] = [];
    const http = createHttpServer((request, response) => {
      seen.push(request.url ?? '');
      response.end(`hello ${token}`);
    });
    const hostPort = await listen(http);
    try {
      const forward = await session.forwardHostPort(hostPort);
      expect(forward.port).toBeGreaterThan(0);
      expect(forward.port).not.toBe(hostPort);
      // The guest side talks to its own 127.0.0.1:<forward.port>, with bash's /dev/tcp.
      const fetchInGuest = `exec 3<>/dev/tcp/127.0.0.1/${forward.port} && printf 'GET /from-guest HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3`;
      const response = await session.sh`bash -c ${fetchInGuest}`;
      expect(response.stdout).toContain(`hello ${token}`);
      expect(seen).toEqual(['/from-guest']);

      await forward.close();
      const after = await session.sh`bash -c ${`exec 3<>/dev/tcp/127.0.0.1/${forward.port}`}`.then(
        (result) => result.exitCode,
        (error: MacvmError) => error.details.exitCode,
      );
      expect(after).not.toBe(0);
    } finally {
      http.close();
    }
  });
});

describe('connecting', () => {
  test('a wrong pinned host key is refused with MACVM_HOST_KEY_MISMATCH, naming both fingerprints, and not retried', async () => {
    const impostor = await prepareSshd();
    try {
      const attempts: number[] = [];
      const deadline = new Deadline(60_000);
      const error = await thrown(() =>
        connectGuest({
          host: sshd.host,
          port: sshd.port,
          credentials: { ...sshd.credentials, hostKey: impostor.hostKey },
          deadline,
          onAttempt: (attempt) => attempts.push(attempt),
        }),
      );
      deadline.finish();
      expect(error.code).toBe('MACVM_HOST_KEY_MISMATCH');
      expect(error.message).toContain(fingerprintOf(impostor.hostKey));
      expect(error.message).toContain(fingerprintOf(sshd.hostKey));
      expect(attempts).toEqual([1]);
    } finally {
      await impostor.stop();
    }
  });

  test('with no pinned key the connection is refused, unless insecureAcceptAnyHostKey is passed', async () => {
    const credentials = { user: sshd.user, privateKeyPath: sshd.privateKeyPath };
    const error = await thrown(() => connectGuest({ host: sshd.host, port: sshd.port, credentials }));
    expect(error.code).toBe('MACVM_HOST_KEY_MISMATCH');
    expect(error.hint).toContain(sshd.hostKey.split(' ').slice(0, 2).join(' '));
    const insecure = await connectGuest({ host: sshd.host, port: sshd.port, credentials, insecureAcceptAnyHostKey: true });
    await insecure.close();
  });

  test('connect retries until the server appears, inside the deadline', async () => {
    const late = await prepareSshd({ port: await freePort() });
    try {
      const failures: Error[] = [];
      let starting: Promise<void> | undefined;
      const deadline = new Deadline(90_000);
      const connected = await connectGuest({
        host: late.host,
        port: late.port,
        credentials: late.credentials,
        deadline,
        retryIntervalMs: 100,
        onAttempt: (_, error) => {
          if (!error) return;
          failures.push(error);
          // The server starts only after the client has verifiably failed once.
          starting ??= late.start();
        },
      });
      deadline.finish();
      await starting;
      try {
        expect(failures.length).toBeGreaterThanOrEqual(1);
        expect((await connected.exec('echo up')).stdout).toBe('up');
      } finally {
        await connected.close();
      }
    } finally {
      await late.stop();
    }
  });

  test('when no server appears, the deadline\'s own error is thrown after several attempts', async () => {
    const port = await freePort();
    const deadline = new Deadline(2_000);
    deadline.enter('ssh');
    let attempts = 0;
    const error = await thrown(() =>
      connectGuest({ host: '127.0.0.1', port, credentials: sshd.credentials, deadline, retryIntervalMs: 100, onAttempt: () => attempts++ }),
    );
    expect(error.code).toBe('MACVM_DEADLINE_EXCEEDED');
    expect(error.details.step).toBe('ssh');
    expect(attempts).toBeGreaterThan(1);
  });

  test('without a deadline, connecting gives up after maxAttempts with MACVM_SSH_CONNECT_FAILED and the last cause', async () => {
    const port = await freePort();
    const error = await thrown(() => connectGuest({ host: '127.0.0.1', port, credentials: sshd.credentials, maxAttempts: 2, retryIntervalMs: 50 }));
    expect(error.code).toBe('MACVM_SSH_CONNECT_FAILED');
    expect(error.details).toMatchObject({ attempts: 2 });
    expect(error.message).toMatch(/ECONNREFUSED/);
  });
});

describe('closing', () => {
  test('close() is idempotent, ends forwards, and any later use is MACVM_SESSION_CLOSED', async () => {
    const own = await connectGuest({ host: sshd.host, port: sshd.port, credentials: sshd.credentials });
    const forward = await own.forwardGuestPort(sshd.port);
    expect(await refusesConnections(forward.port)).toBe(false);
    expect(own.closed).toBe(false);
    await Promise.all([own.close(), own.close()]);
    await own.close();
    expect(own.closed).toBe(true);
    expect(await refusesConnections(forward.port)).toBe(true);
    for (const use of [() => own.exec('true'), () => own.sh`true`, () => own.readFile('/etc/hostname'), () => own.forwardHostPort(80)]) {
      expect((await thrown(use)).code).toBe('MACVM_SESSION_CLOSED');
    }
  });

  test('stopping the sshd fixture ends its processes (even a running command), frees its port and removes its dir', async () => {
    const own = await startSshd();
    const marker = uniqueSleep();
    const client = await connectGuest({ host: own.host, port: own.port, credentials: own.credentials });
    const running = client.exec(`echo started; ${marker}`, {
      onStdout: () => {},
    }).catch((error: unknown) => error);
    await waitFor(async () => (await processesWith(marker)).length > 0);
    await own.stop();
    const outcome = await running;
    expect(isMacvmError(outcome, 'MACVM_SESSION_CLOSED')).toBe(true);
    expect(client.closed).toBe(true);
    await client.close();
    expect(await waitUntilGone(marker)).toEqual([]);
    expect(await refusesConnections(own.port)).toBe(true);
    await expect(stat(own.dir)).rejects.toThrow(/ENOENT/);
  });
});

async function waitFor(condition: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('condition never became true');
}

function fingerprintOf(publicKeyLine: string): string {
  return execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', '-'], { input: publicKeyLine }).toString().split(' ')[1]!;
}

/** `find -printf '%P %y %m'` computed locally, to compare with the guest's own find. */
async function findStyleListing(root: string): Promise<string> {
  const lines: string[] = [];
  const walk = async (dir: string, prefix: string): Promise<void> => {
    for (const name of await readdir(dir)) {
      const path = join(dir, name);
      const info = await lstat(path);
      const type = info.isSymbolicLink() ? 'l' : info.isDirectory() ? 'd' : 'f';
      const mode = (info.isSymbolicLink() ? 0o777 : info.mode & 0o7777).toString(8);
      lines.push(`${prefix}${name} ${type} ${mode}`);
      if (info.isDirectory()) await walk(path, `${prefix}${name}/`);
    }
  };
  await walk(root, '');
  return lines.sort((a, b) => (Buffer.compare(Buffer.from(a), Buffer.from(b)))).join('\n');
}

/** Every entry under root: relative path, type, permission bits, and content hash or link target. */
async function describeTree(root: string): Promise<string[]> {
  const entries: string[] = [];
  const walk = async (dir: string, prefix: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const path = join(dir, name);
      const info = await lstat(path);
      if (info.isSymbolicLink()) entries.push(`${prefix}${name} link -> ${await readlink(path)}`);
      else if (info.isDirectory()) {
        entries.push(`${prefix}${name}/ dir ${(info.mode & 0o7777).toString(8)}`);
        await walk(path, `${prefix}${name}/`);
      } else entries.push(`${prefix}${name} file ${(info.mode & 0o7777).toString(8)} ${sha256(await readFile(path))}`);
    }
  };
  await walk(root, '');
  return entries;
}
