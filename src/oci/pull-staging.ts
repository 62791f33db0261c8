/**
 * Where a pull builds an image before it is installed: one private (0700) directory per manifest
 * digest under the cache root, `<cacheRoot>/.staging/<hex>/`, kept across processes so a later
 * pull of the same digest resumes. Inside:
 *
 *   bundle/                  the image's files, renamed into the cache as a whole at install
 *   journal                  one line per layer verified and written through to the disk
 *   layer-<n>.partial        the compressed bytes of layer n received so far
 *
 * A layer is journaled only after its bytes were synced, so a journal line holds even after a
 * power cut, and a resumed pull skips those layers without hashing them again (Tart re-hashes
 * every piece of a resumed pull instead).
 */
import { appendFile, chmod, mkdir, readFile, rm, stat } from 'node:fs/promises';
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
  const bundle = join(root, 'bundle');
  let resumed = await exists(root);
  if (resumed && !(await exists(bundle))) {
    // Its bundle was installed (or removed) after all: the journal speaks of files that are gone.
    await rm(root, { recursive: true, force: true });
    resumed = false;
  }
  await mkdir(bundle, { recursive: true, mode: 0o700 });
  await chmod(root, 0o700);
  await chmod(bundle, 0o700);
  const journal = await Journal.load(join(root, 'journal'));
  return { root, bundle, resumed, journal, partialPath: (index) => join(root, `layer-${index}.partial`) };
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

export async function removeStaging(staging: Staging): Promise<void> {
  await rm(staging.root, { recursive: true, force: true });
}

interface JournalLine {
  layer: number;
  digest: string;
}

export class Journal {
  private constructor(
    private readonly path: string,
    private readonly lines: Map<number, string>,
  ) {}

  static async load(path: string): Promise<Journal> {
    const lines = new Map<number, string>();
    const text = await readFile(path, 'utf8').catch(() => '');
    for (const raw of text.split('\n')) {
      try {
        // A line cut short by a kill does not parse and is ignored: that layer is simply redone.
        const line = JSON.parse(raw) as JournalLine;
        if (Number.isInteger(line.layer) && typeof line.digest === 'string') lines.set(line.layer, line.digest);
      } catch {
        // see above
      }
    }
    return new Journal(path, lines);
  }

  /** Whether layer `index`, with this digest, is already on disk and verified. */
  has(index: number, digest: string): boolean {
    return this.lines.get(index) === digest;
  }

  async record(index: number, digest: string): Promise<void> {
    this.lines.set(index, digest);
    await appendFile(this.path, `${JSON.stringify({ layer: index, digest } satisfies JournalLine)}\n`, { mode: 0o600 });
  }
}
