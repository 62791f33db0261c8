import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';

/**
 * Host programs the linux-test build runs, and the Debian package that provides each.
 * Everything else (cpio archive, gzip, ELF reading) is done in TypeScript.
 */
export const BUILD_TOOLS: ReadonlyArray<{ tool: string; apt: string }> = [
  { tool: 'apt-get', apt: 'apt' },
  { tool: 'apt-cache', apt: 'apt' },
  { tool: 'dpkg-deb', apt: 'dpkg' },
  { tool: 'mkfs.ext4', apt: 'e2fsprogs' },
  { tool: 'debugfs', apt: 'e2fsprogs' },
  { tool: 'e2fsck', apt: 'e2fsprogs' },
  { tool: 'qemu-img', apt: 'qemu-utils' },
  { tool: 'ssh-keygen', apt: 'openssh-client' },
  { tool: 'dropbearconvert', apt: 'dropbear-bin' },
];

/** sbin dirs are searched too: mkfs.ext4 lives there and a non-root PATH often lacks them. */
export function toolSearchPath(env: NodeJS.ProcessEnv = process.env): string[] {
  const dirs = (env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const extra of ['/usr/local/sbin', '/usr/sbin', '/sbin']) if (!dirs.includes(extra)) dirs.push(extra);
  return dirs;
}

export async function findTool(tool: string, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  for (const dir of toolSearchPath(env)) {
    const candidate = join(dir, tool);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this dir
    }
  }
  return undefined;
}

/** The tools the build needs that are not installed, and the apt packages that bring them. */
export async function missingHostTools(env: NodeJS.ProcessEnv = process.env): Promise<{ tools: string[]; aptPackages: string[] }> {
  const tools: string[] = [];
  const aptPackages: string[] = [];
  for (const { tool, apt } of BUILD_TOOLS) {
    if (await findTool(tool, env)) continue;
    tools.push(tool);
    if (!aptPackages.includes(apt)) aptPackages.push(apt);
  }
  return { tools, aptPackages };
}

export function aptInstallLine(packages: string[]): string {
  return `apt-get install -y --no-install-recommends ${packages.join(' ')}`;
}
