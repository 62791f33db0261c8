/**
 * Where a pull builds an image before it is installed: one private (0700) directory per manifest
 * digest under the cache root, `<cacheRoot>/.staging/<hex>/`, kept across processes so a later
 * pull of the same digest resumes. Inside:
 *
 *   bundle/                  the image's files, renamed into the cache as a whole at install
 *   journal                  one line per layer verified (its digest checked, its file written)
 *   layer-<n>.partial        the compressed bytes of layer n received so far
 *
 * A journal line is trusted as is within the same boot: what a killed process wrote sits in the
 * page cache for the next one. After a reboot the data may not have reached the disk, so the
 * caller re-hashes such pieces instead (as Tart does for every piece of a resumed pull).
 */
import { readFileSync } from 'node:fs';
import { appendFile, chmod, mkdir, readFile, rm, stat } from 'node:fs/promises';
import { uptime } from 'node:os';
import { join } from 'node:path';

export interface Staging {
  root: string;
  bundle: string;
  /** Whether the directory was there before this process: its files may hold an earlier attempt's bytes. */
  resumed: boolean;
  journal: Journal;
  partialPath(layerIndex: number): string;
}

export function stagingRoot(cacheRoot: string): string {
  return join(cacheRoot, '.staging');
}

export async function openStaging(cacheRoot: string, digest: string): Promise<Staging> {
  const parent = stagingRoot(cacheRoot);
  await mkdir(parent, { recursive: true, mode: 0o700 });
  await chmod(parent, 0o700);
  const root = join(parent, digest.replace(/^sha256:/, ''));
  const resumed = await stat(root).then(
    () => true,
    () => false,
  );
  const bundle = join(root, 'bundle');
  await mkdir(bundle, { recursive: true, mode: 0o700 });
  await chmod(root, 0o700);
  await chmod(bundle, 0o700);
  const journal = await Journal.load(join(root, 'journal'));
  return { root, bundle, resumed, journal, partialPath: (index) => join(root, `layer-${index}.partial`) };
}

export async function removeStaging(staging: Staging): Promise<void> {
  await rm(staging.root, { recursive: true, force: true });
}

interface JournalLine {
  layer: number;
  digest: string;
  boot: string;
}

export class Journal {
  private constructor(
    private readonly path: string,
    private readonly lines: Map<number, JournalLine>,
  ) {}

  static async load(path: string): Promise<Journal> {
    const lines = new Map<number, JournalLine>();
    const text = await readFile(path, 'utf8').catch(() => '');
    for (const raw of text.split('\n')) {
      try {
        // A line cut short by a kill does not parse and is ignored: that layer is simply redone.
        const line = JSON.parse(raw) as JournalLine;
        if (Number.isInteger(line.layer) && typeof line.digest === 'string' && typeof line.boot === 'string') lines.set(line.layer, line);
      } catch {
        // see above
      }
    }
    return new Journal(path, lines);
  }

  /**
   * 'same-boot' when layer `index` with `digest` was verified since the last boot, 'earlier-boot'
   * when before it (re-check the bytes), undefined when it was not.
   */
  state(index: number, digest: string): 'same-boot' | 'earlier-boot' | undefined {
    const line = this.lines.get(index);
    if (!line || line.digest !== digest) return undefined;
    return sameBoot(line.boot, bootMark()) ? 'same-boot' : 'earlier-boot';
  }

  async record(index: number, digest: string): Promise<void> {
    const line: JournalLine = { layer: index, digest, boot: bootMark() };
    this.lines.set(index, line);
    await appendFile(this.path, `${JSON.stringify(line)}\n`, { mode: 0o600 });
  }
}

let mark: string | undefined;

/** Names this boot: Linux's boot id, elsewhere the boot time in seconds (from the uptime). */
export function bootMark(): string {
  if (mark) return mark;
  try {
    mark = `id:${readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()}`;
  } catch {
    mark = `t:${Math.round(Date.now() / 1000 - uptime())}`;
  }
  return mark;
}

function sameBoot(a: string, b: string): boolean {
  if (a === b) return true;
  // A boot time derived from the uptime wobbles by a second or so between processes.
  if (a.startsWith('t:') && b.startsWith('t:')) return Math.abs(Number(a.slice(2)) - Number(b.slice(2))) <= 5;
  return false;
}
