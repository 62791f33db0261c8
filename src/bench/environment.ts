import { readFile } from 'node:fs/promises';
import { cpus, release, type } from 'node:os';
import { execa } from 'execa';

/** What the host is, for history lines: a ratio only compares with one from the same kind of machine. */
export async function hostFacts(): Promise<{ hostModel: string; hostOs: string }> {
  return { hostModel: await hostModel(), hostOs: await hostOs() };
}

async function hostModel(): Promise<string> {
  if (process.platform === 'darwin') {
    const brand = await execa('sysctl', ['-n', 'machdep.cpu.brand_string'], { reject: false });
    if (brand.exitCode === 0 && String(brand.stdout).trim()) return String(brand.stdout).trim();
  }
  if (process.platform === 'linux') {
    const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
    const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim();
    if (model) return model;
  }
  return cpus()[0]?.model?.trim() || `${process.arch} (unknown model)`;
}

async function hostOs(): Promise<string> {
  if (process.platform === 'darwin') {
    const version = await execa('sw_vers', ['-productVersion'], { reject: false });
    if (version.exitCode === 0) return `macOS ${String(version.stdout).trim()} (${process.arch})`;
  }
  if (process.platform === 'linux') {
    const osRelease = await readFile('/etc/os-release', 'utf8').catch(() => '');
    const pretty = /^PRETTY_NAME="?([^"\n]+)"?$/m.exec(osRelease)?.[1];
    if (pretty) return `${pretty}, kernel ${release()} (${process.arch})`;
  }
  return `${type()} ${release()} (${process.arch})`;
}

/** `git rev-parse --short HEAD` in `cwd`, or undefined outside a repository. */
export async function currentGitRef(cwd = process.cwd()): Promise<string | undefined> {
  const result = await execa('git', ['rev-parse', '--short', 'HEAD'], { cwd, reject: false }).catch(() => undefined);
  const ref = result && result.exitCode === 0 ? String(result.stdout).trim() : '';
  return ref || undefined;
}

/** The full commit a ref names, or undefined when it names none (or git is absent). */
export async function resolveGitRef(ref: string, cwd = process.cwd()): Promise<string | undefined> {
  const result = await execa('git', ['rev-parse', '--verify', '--quiet', `${ref}^{commit}`], { cwd, reject: false }).catch(() => undefined);
  const sha = result && result.exitCode === 0 ? String(result.stdout).trim() : '';
  return sha || undefined;
}
