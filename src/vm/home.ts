import { chmod, mkdir, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * MACVM_HOME holds images (`images/<name>/`) and runtime state (`run/<vm-id>/`,
 * `sessions/`, `slots/`). Default ~/.cache/macvm. Runtime dirs are private (0700):
 * they hold SSH keys, QMP sockets and console logs.
 */
export function macvmHome(env: NodeJS.ProcessEnv = process.env): string {
  const configured = env.MACVM_HOME?.trim();
  return configured ? resolve(configured) : join(homedir(), '.cache', 'macvm');
}

export const homePaths = (home = macvmHome()) => ({
  home,
  images: join(home, 'images'),
  image: (name: string) => join(home, 'images', name),
  run: join(home, 'run'),
  vm: (id: string) => join(home, 'run', id),
  sessions: join(home, 'sessions'),
  slots: join(home, 'slots'),
  downloads: join(home, 'downloads'),
});

/** A directory of mode 0700: created so, or tightened when it exists (and is ours) with wider modes. */
export async function ensurePrivateDir(path: string): Promise<string> {
  await mkdir(path, { recursive: true, mode: 0o700 });
  const info = await stat(path);
  if ((info.mode & 0o077) !== 0 && info.uid === process.getuid?.()) await chmod(path, 0o700);
  return path;
}

/**
 * MACVM_HOME and its images/ dir, both 0700. An image holds secrets: the guest's SSH host
 * private key (inside disk.qcow2) and the client's private key; a local user who could read
 * them could impersonate the guest or log in to it. Homes made by older versions (0755) are
 * tightened here, on every build, clone and image use.
 */
export async function ensurePrivateHome(home = macvmHome()): Promise<string> {
  await ensurePrivateDir(home);
  await ensurePrivateDir(homePaths(home).images);
  return home;
}
