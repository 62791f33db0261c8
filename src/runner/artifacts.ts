import { copyFile, mkdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { writeFileAtomic } from '../util/atomic-write.js';
import type { Artifact } from '../shared/results.js';

/**
 * Where a suite's artifacts go: reports/artifacts/<suite-slug>/. Paths stored in results
 * are relative to the reports dir, so a reports folder can be zipped and opened anywhere.
 */
export function suiteArtifactDir(reportsDir: string, suiteName: string, vmId: string): string {
  return join(reportsDir, 'artifacts', `${slug(suiteName)}-${vmId}`);
}

export async function saveArtifact(reportsDir: string, dir: string, name: string, data: Buffer | string, kind: Artifact['kind'], contentType: string): Promise<Artifact> {
  const path = join(dir, name);
  await writeFileAtomic(path, data);
  return { kind, name, path: relative(reportsDir, path), contentType };
}

export async function copyArtifact(reportsDir: string, dir: string, name: string, source: string, kind: Artifact['kind'], contentType: string): Promise<Artifact | undefined> {
  const path = join(dir, name);
  await mkdir(dir, { recursive: true });
  try {
    await copyFile(source, path);
  } catch {
    return undefined;
  }
  return { kind, name, path: relative(reportsDir, path), contentType };
}

export function slug(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 60) || 'suite';
}
