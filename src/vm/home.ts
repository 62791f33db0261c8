import { mkdir } from 'node:fs/promises';
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

export async function ensurePrivateDir(path: string): Promise<string> {
  await mkdir(path, { recursive: true, mode: 0o700 });
  return path;
}
