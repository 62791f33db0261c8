import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic-write.js';

/**
 * Where a failed comparison leaves its pictures:
 * `<reports>/artifacts/snapshots/<spec path>/<name>-{expected,actual,diff}.png`.
 */
export function snapshotArtifactPaths(reportsDir: string, specRelativePath: string, name: string): { expected: string; actual: string; diff: string } {
  const base = join(reportsDir, 'artifacts', 'snapshots', specRelativePath, name);
  return { expected: `${base}-expected.png`, actual: `${base}-actual.png`, diff: `${base}-diff.png` };
}

export async function writeArtifact(path: string, data: Buffer): Promise<void> {
  await writeFileAtomic(path, data);
}
