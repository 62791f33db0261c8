import { execFile } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { delimiter, isAbsolute, join } from 'node:path';

/**
 * THE list of host programs macvm needs on Linux, each with the Debian package that brings it.
 * `macvm doctor` checks it and `doctor --fix` installs from it (`npm start` and `npm test` call
 * doctor; `.ci/run` is just `npm install && npm test`); the image build refuses to start
 * without its part of it. Nothing else keeps a list of host packages.
 *
 * - runtime:     booting qemu guests.
 * - image-build: building the linux-test / linux-browser guests from Debian packages (the
 *                guests' own packages are fetched with `apt-get download` and unpacked, never
 *                installed on the host).
 * - tests:       what macvm's own tests (test/, and src/ code they drive) run on this host.
 *                test/unit/host-requirements.test.ts fails when a test starts a host program
 *                that is neither here nor in its short list of base-system tools.
 *
 * Not here: clang and a macOS SDK, which only `npm run check:native` uses (macOS, or a Linux
 * host with an SDK; CI has none).
 */
export type HostNeed = 'runtime' | 'image-build' | 'tests';

export interface HostRequirement {
  /** Program name looked up on PATH (sbin dirs included), or an absolute path. */
  bin: string;
  /** The Debian package that provides it. */
  apt: string;
  neededFor: readonly HostNeed[];
  why: string;
  /** A command that must exit 0 as well, when the program being there is not enough. */
  probe?: readonly string[];
}

export const HOST_REQUIREMENTS: readonly HostRequirement[] = [
  { bin: 'qemu-system-x86_64', apt: 'qemu-system-x86', neededFor: ['runtime'], why: 'boots the qemu guests' },
  { bin: 'qemu-img', apt: 'qemu-utils', neededFor: ['runtime', 'image-build'], why: 'clones (qcow2 overlays), and the guest disks' },
  { bin: 'apt-get', apt: 'apt', neededFor: ['image-build'], why: 'apt-get download of the guest packages' },
  { bin: 'apt-cache', apt: 'apt', neededFor: ['image-build'], why: 'versions, checksums and dependencies of the guest packages' },
  { bin: 'dpkg-deb', apt: 'dpkg', neededFor: ['image-build'], why: 'unpacks the guest packages' },
  { bin: 'mkfs.ext4', apt: 'e2fsprogs', neededFor: ['image-build'], why: 'the guest root filesystem' },
  { bin: 'debugfs', apt: 'e2fsprogs', neededFor: ['image-build'], why: 'makes the guest files root-owned without root' },
  { bin: 'e2fsck', apt: 'e2fsprogs', neededFor: ['image-build'], why: 'checks the guest root filesystem' },
  { bin: 'ssh-keygen', apt: 'openssh-client', neededFor: ['image-build', 'tests'], why: 'the pinned guest keys; tests make and fingerprint keys' },
  { bin: 'dropbearconvert', apt: 'dropbear-bin', neededFor: ['image-build'], why: "converts the guest host key to dropbear's format" },
  { bin: 'ssh', apt: 'openssh-client', neededFor: ['tests'], why: 'integration tests reach the guest with the real ssh client' },
  { bin: 'sftp', apt: 'openssh-client', neededFor: ['tests'], why: "the guest's sftp-server is tested with the real sftp client" },
  { bin: '/usr/sbin/sshd', apt: 'openssh-server', neededFor: ['tests'], why: 'the ssh provider and browser-over-ssh tests run a real sshd (test/support/sshd.ts)' },
  { bin: '/usr/bin/chromium', apt: 'chromium', neededFor: ['tests'], why: 'browser-over-ssh and report rendering tests' },
  { bin: '/usr/bin/chromedriver', apt: 'chromium-driver', neededFor: ['tests'], why: 'browser-over-ssh tests' },
  { bin: 'cpio', apt: 'cpio', neededFor: ['tests'], why: 'the initrd writer is checked against the real cpio' },
  { bin: 'busybox', apt: 'busybox-static', neededFor: ['tests'], why: "bench timers: `busybox adjtimex` is run on the host too (test/unit/bench-timers, test/integration/bench-vm)" },
  { bin: 'readelf', apt: 'binutils', neededFor: ['tests'], why: 'the ELF reader is checked against readelf' },
  { bin: 'perl', apt: 'perl', neededFor: ['tests'], why: 'the perl bench timer needs Time::HiRes (perl-base alone lacks it)', probe: ['perl', '-MTime::HiRes', '-e', '1'] },
  { bin: 'git', apt: 'git', neededFor: ['tests'], why: 'bench history reads commits' },
  { bin: 'openssl', apt: 'openssl', neededFor: ['tests'], why: 'the orchard tests make TLS certificates' },
  { bin: 'ps', apt: 'procps', neededFor: ['tests'], why: 'tests check no vmhost process is left behind' },
  { bin: 'pgrep', apt: 'procps', neededFor: ['tests'], why: 'tests look for leftover qemu processes' },
  { bin: 'mount', apt: 'mount', neededFor: ['tests'], why: 'a full-disk test mounts a tiny tmpfs (as root)' },
  { bin: 'umount', apt: 'mount', neededFor: ['tests'], why: 'unmounts it' },
  { bin: 'docker-registry', apt: 'docker-registry', neededFor: ['tests'], why: 'image pull/push tests talk to a real OCI registry (CNCF distribution) on 127.0.0.1' },
  { bin: 'htpasswd', apt: 'apache2-utils', neededFor: ['tests'], why: "the registry's Basic-auth test writes a bcrypt htpasswd file" },
  { bin: 'lz4', apt: 'lz4', neededFor: ['tests'], why: "Debian's lz4 CLI is the independent encoder and decoder the Apple-LZ4 codec is checked against" },
  { bin: 'skopeo', apt: 'skopeo', neededFor: ['tests'], why: 'pulled images are checked against a real OCI client, and `npm run bench oci` runs beside it' },
];

export function requirementsFor(need: HostNeed): HostRequirement[] {
  return HOST_REQUIREMENTS.filter((r) => r.neededFor.includes(need));
}

/** sbin dirs are searched too: mkfs.ext4 lives there and a non-root PATH often lacks them. */
export function toolSearchPath(env: NodeJS.ProcessEnv = process.env): string[] {
  const dirs = (env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const extra of ['/usr/local/sbin', '/usr/sbin', '/sbin']) if (!dirs.includes(extra)) dirs.push(extra);
  return dirs;
}

export async function findTool(tool: string, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const candidates = isAbsolute(tool) ? [tool] : toolSearchPath(env).map((dir) => join(dir, tool));
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export interface MissingRequirements {
  /** What is missing (program names, or the probe that failed). */
  tools: string[];
  /** The Debian packages that bring them, each once, in list order. */
  aptPackages: string[];
}

/** Which of `requirements` this host lacks. */
export async function missingRequirements(requirements: readonly HostRequirement[], env: NodeJS.ProcessEnv = process.env): Promise<MissingRequirements> {
  const tools: string[] = [];
  const aptPackages: string[] = [];
  for (const requirement of requirements) {
    const found = await findTool(requirement.bin, env);
    let problem: string | undefined;
    if (!found) problem = requirement.bin;
    else if (requirement.probe && !(await probeOk(requirement.probe, env))) problem = requirement.probe.join(' ');
    if (problem === undefined) continue;
    tools.push(problem);
    if (!aptPackages.includes(requirement.apt)) aptPackages.push(requirement.apt);
  }
  return { tools, aptPackages };
}

function probeOk(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<boolean> {
  const [file, ...args] = argv;
  return new Promise((resolve) => {
    execFile(file!, args, { env: { ...env, PATH: toolSearchPath(env).join(delimiter) }, timeout: 10_000 }, (error) => resolve(!error));
  });
}

export function aptInstallLine(packages: readonly string[]): string {
  return `apt-get install -y --no-install-recommends ${packages.join(' ')}`;
}
