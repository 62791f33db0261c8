/**
 * A REAL OpenSSH server on 127.0.0.1 for tests — not a mock. Each call makes a
 * private temp dir (0700) with a fresh ed25519 host key, a fresh client key,
 * authorized_keys and an sshd_config, and runs `/usr/sbin/sshd -D -e` on a free
 * port as the current user. Everything it starts is ended by stop().
 *
 *   const sshd = await startSshd();
 *   try {
 *     const session = await connectGuest({ host: sshd.host, port: sshd.port, credentials: sshd.credentials });
 *     ...
 *   } finally {
 *     await sshd.stop();
 *   }
 *
 * prepareSshd() makes the keys and config without starting the server, for tests
 * that need the credentials first (e.g. a client that must retry until the
 * server appears); call start() on the result later.
 *
 * Needs the Debian packages openssh-server (sshd, sftp-server) and openssh-client
 * (ssh-keygen). Commands run as the user running the tests, in that user's login
 * shell but with HOME set to an empty dir of the fixture (so the user's shell start-up
 * files do not run), and the user's real home as the SFTP start directory: use absolute paths.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { SshProviderSettings } from '../../src/vm/ssh/settings.js';
import type { SshCredentials } from '../../src/shared/guest.js';

const run = promisify(execFile);

export const SSHD_PATH = '/usr/sbin/sshd';
export const SFTP_SERVER_PATH = '/usr/lib/openssh/sftp-server';

export interface SshdOptions {
  /**
   * Loopback address to listen on; default 127.0.0.1. Another 127.x.y.z with port 22 plays a
   * guest at a fixed SSH port (vz, tart stand-ins) without clashing with anything else.
   */
  address?: string;
  /** Port to listen on; a free one is picked when absent. */
  port?: number;
  /** More sshd_config lines, appended after the defaults (sshd keeps the first value of most keys, so these cannot override the defaults). */
  extraConfig?: string[];
  /** How long start() waits for "Server listening"; default 10 s. */
  startTimeoutMs?: number;
}

export interface Sshd {
  readonly host: string;
  readonly port: number;
  /** The login user (whoever runs the tests). */
  readonly user: string;
  /** The client's private key (0600). */
  readonly privateKeyPath: string;
  /** The server's host public key as an OpenSSH line ("ssh-ed25519 AAAA... comment"), for pinning. */
  readonly hostKey: string;
  /** user + privateKeyPath + hostKey, ready for connectGuest. */
  readonly credentials: SshCredentials;
  /** The private temp dir holding keys, config and pid file. */
  readonly dir: string;
  /** sshd's own log so far (LogLevel VERBOSE): attach it to a failing test's message. */
  log(): string;
  /** Starts sshd (prepareSshd only; startSshd already did). Resolves once it listens. */
  start(): Promise<void>;
  /** Kills sshd and every process it started, and deletes the temp dir. Idempotent. */
  stop(): Promise<void>;
}

/** Keys and config in a fresh private dir; the server is not running yet. */
export async function prepareSshd(options: SshdOptions = {}): Promise<Sshd> {
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 }).catch(() => {
    // Only root can create it, and only root's sshd needs it (privilege separation).
  });
  const dir = await mkdtemp(join(tmpdir(), 'macvm-sshd-'));
  try {
    return await prepareIn(dir, options);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

/** prepareSshd() + start(). */
export async function startSshd(options: SshdOptions = {}): Promise<Sshd> {
  const sshd = await prepareSshd(options);
  try {
    await sshd.start();
  } catch (error) {
    await sshd.stop();
    throw error;
  }
  return sshd;
}

async function prepareIn(dir: string, options: SshdOptions): Promise<Sshd> {
  const user = userInfo().username;
  const address = options.address ?? '127.0.0.1';
  const hostKeyPath = join(dir, 'ssh_host_ed25519_key');
  const privateKeyPath = join(dir, 'client_ed25519');
  const authorizedKeysPath = join(dir, 'authorized_keys');
  const configPath = join(dir, 'sshd_config');
  const homeDir = join(dir, 'home');
  await mkdir(homeDir, { mode: 0o700 });
  await Promise.all([
    run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'macvm-test-host', '-f', hostKeyPath]),
    run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'macvm-test-client', '-f', privateKeyPath]),
  ]);
  const hostKey = (await readFile(`${hostKeyPath}.pub`, 'utf8')).trim();
  await writeFile(authorizedKeysPath, await readFile(`${privateKeyPath}.pub`), { mode: 0o600 });

  let port = options.port ?? (await freePort());
  let child: ChildProcess | undefined;
  let output = '';
  let stopping: Promise<void> | undefined;

  const writeConfig = (): Promise<void> =>
    writeFile(
      configPath,
      [
        `ListenAddress ${address}`,
        `Port ${port}`,
        `HostKey ${hostKeyPath}`,
        `AuthorizedKeysFile ${authorizedKeysPath}`,
        `PidFile ${join(dir, 'sshd.pid')}`,
        'StrictModes no',
        'UsePAM no',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'PubkeyAuthentication yes',
        'PermitRootLogin prohibit-password',
        'AllowTcpForwarding yes',
        'GatewayPorts no',
        'X11Forwarding no',
        'PrintMotd no',
        'UseDNS no',
        `Subsystem sftp ${SFTP_SERVER_PATH}`,
        // Sessions get a private, empty HOME: the host user's shell start-up files (on this
        // machine ~/.bashrc runs pyenv, ~3 s per command, and a stale pyenv lock can stall
        // every command) must not decide how long a test's exec takes.
        `SetEnv HOME=${homeDir}`,
        'LogLevel VERBOSE',
        ...(options.extraConfig ?? []),
        '',
      ].join('\n'),
      { mode: 0o600 },
    );

  /** One launch; resolves true once listening, false when the port was taken (retry on another). */
  const launch = (): Promise<boolean> =>
    new Promise<boolean>((resolve, reject) => {
      // An absolute path is required: sshd re-executes itself for each connection.
      const proc = spawn(SSHD_PATH, ['-D', '-e', '-f', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
      child = proc;
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`sshd did not report listening on ${address}:${port} within ${options.startTimeoutMs ?? 10_000} ms. Its log:\n${output}`));
      }, options.startTimeoutMs ?? 10_000);
      proc.stderr!.setEncoding('utf8');
      proc.stderr!.on('data', (text: string) => {
        output = (output + text).slice(-1_000_000);
        if (output.includes(`Server listening on ${address} port ${port}`)) {
          clearTimeout(timer);
          resolve(true);
        }
      });
      proc.once('error', (error) => {
        clearTimeout(timer);
        reject(new Error(`Cannot run ${SSHD_PATH} (apt-get install openssh-server): ${error.message}`));
      });
      proc.once('exit', (code, signal) => {
        clearTimeout(timer);
        if (child === proc) child = undefined;
        if (/Address already in use/.test(output) && options.port === undefined) resolve(false);
        else reject(new Error(`sshd exited (${signal ?? `code ${code}`}) before listening. Its log:\n${output}`));
      });
    });

  const sshd: Sshd = {
    host: address,
    get port() {
      return port;
    },
    user,
    privateKeyPath,
    hostKey,
    credentials: { user, privateKeyPath, hostKey },
    dir,
    log: () => output,
    async start() {
      if (child) throw new Error('sshd is already running');
      if (stopping) throw new Error('sshd was stopped; prepare a new one');
      // The free port was free when picked, but another test may take it before sshd
      // binds it; then pick another (only when the caller did not ask for a port).
      for (let tries = 0; tries < 5; tries++) {
        await writeConfig();
        if (await launch()) return;
        port = await freePort();
      }
      throw new Error(`sshd could not find a free port. Its log:\n${output}`);
    },
    stop() {
      stopping ??= (async () => {
        const proc = child;
        if (proc?.pid !== undefined) {
          // sshd forks a process per connection (and those run the commands); ending
          // only the listener would leave them running, so the whole tree goes.
          const tree = await descendants(proc.pid);
          const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
          proc.kill('SIGTERM');
          for (const pid of tree) killQuietly(pid, 'SIGKILL');
          const escalate = setTimeout(() => proc.kill('SIGKILL'), 3_000);
          await exited;
          clearTimeout(escalate);
        }
        await rm(dir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
  return sshd;
}

/** A port nobody listens on right now (the kernel's pick, released immediately). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Every live process below `root`, from /proc (Linux; the fixture only runs there). */
async function descendants(root: number): Promise<number[]> {
  const parentOf = new Map<number, number>();
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    // Field 4 (ppid) follows the parenthesised command name, which may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[1]) parentOf.set(Number(name), Number(fields[1]));
  }
  const found: number[] = [];
  const frontier = [root];
  while (frontier.length > 0) {
    const parent = frontier.pop()!;
    for (const [pid, ppid] of parentOf) {
      if (ppid === parent && !found.includes(pid)) {
        found.push(pid);
        frontier.push(pid);
      }
    }
  }
  return found;
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

/** The ssh provider's settings for this server: the test machine itself, as a Linux "guest". */
export function sshProviderSettings(sshd: Sshd): SshProviderSettings {
  return { host: sshd.host, port: sshd.port, user: sshd.user, privateKeyPath: sshd.privateKeyPath, hostKey: sshd.hostKey, os: 'linux', arch: 'x86_64' };
}
