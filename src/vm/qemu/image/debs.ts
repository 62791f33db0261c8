import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { MacvmError } from '../../../errors.js';
import { runTool } from './run-tool.js';

/**
 * Debian packages, fetched the ordinary way: `apt-cache` says which version and checksum
 * the host's apt sources offer, `apt-get download` (no root needed) fetches the .deb into
 * the downloads cache, and `dpkg-deb -x` unpacks it. A cached .deb whose SHA256 matches
 * is used without asking the network, so rebuilds work offline.
 */
export interface DebPackage {
  name: string;
  version: string;
  architecture: string;
  sha256: string;
  /** The file name apt-get download saves it under (epoch colon escaped as %3a). */
  fileName: string;
}

const APT_UPDATE_HINT = 'Refresh the package lists with `apt-get update` (as root) and build again.';

/** Version, architecture and checksum of each package, from one apt-cache call (each call costs seconds). */
export async function describePackages(names: string[]): Promise<DebPackage[]> {
  const text = await runTool('look up packages', 'apt-cache', ['show', '--no-all-versions', ...names]).catch((error: unknown) => {
    throw new MacvmError('MACVM_IMAGE_BUILD_FAILED', `apt does not know all of the Debian packages ${names.join(', ')}.`, { hint: APT_UPDATE_HINT, cause: error });
  });
  const stanzas = parseControlStanzas(text);
  return names.map((name) => {
    const stanza = stanzas.find((s) => s.Package === name);
    const version = stanza?.Version;
    const architecture = stanza?.Architecture;
    const sha256 = stanza?.SHA256;
    if (!version || !architecture || !sha256) {
      throw new MacvmError('MACVM_IMAGE_BUILD_FAILED', `apt-cache show has no downloadable version of ${name}.`, { hint: APT_UPDATE_HINT });
    }
    return { name, version, architecture, sha256, fileName: `${name}_${version.replace(/:/g, '%3a')}_${architecture}.deb` };
  });
}

/** Debian control format: stanzas separated by blank lines, "Key: value" with indented continuations. */
export function parseControlStanzas(text: string): Array<Record<string, string>> {
  return text
    .split(/\n\s*\n/)
    .map((block) => {
      const fields: Record<string, string> = {};
      for (const match of block.matchAll(/^([A-Za-z0-9-]+):[ \t]*(.*)$/gm)) fields[match[1]!] = match[2]!.trim();
      return fields;
    })
    .filter((fields) => fields.Package);
}

/** The versioned kernel package a meta-package (linux-image-cloud-amd64) currently points at. */
export async function resolveKernelPackage(metaPackage: string): Promise<string> {
  const text = await runTool(`resolve ${metaPackage}`, 'apt-cache', ['depends', metaPackage]);
  const match = /Depends:\s*(linux-image-\d\S*)/.exec(text);
  if (!match?.[1]) {
    throw new MacvmError('MACVM_IMAGE_BUILD_FAILED', `Could not tell which kernel ${metaPackage} depends on.`, { hint: APT_UPDATE_HINT, details: { output: text } });
  }
  return match[1];
}

/** The kernel release (uname -r) of a versioned linux-image package name. */
export function kernelRelease(kernelPackage: string): string {
  return kernelPackage.replace(/^linux-image-/, '').replace(/-unsigned$/, '');
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function cachedOk(dir: string, deb: DebPackage): Promise<boolean> {
  try {
    return (await sha256File(join(dir, deb.fileName))) === deb.sha256;
  } catch {
    return false;
  }
}

/** Makes sure every package's .deb is in `dir` with the right checksum; returns their paths. */
export async function downloadPackages(dir: string, packages: DebPackage[], onFetch?: (names: string[]) => void): Promise<string[]> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const missing: DebPackage[] = [];
  for (const deb of packages) if (!(await cachedOk(dir, deb))) missing.push(deb);
  if (missing.length > 0) {
    onFetch?.(missing.map((m) => m.name));
    // name=version so apt fetches exactly what we checked the hash of.
    await runTool('download packages', 'apt-get', ['download', '-q', ...missing.map((m) => `${m.name}=${m.version}`)], { cwd: dir });
    for (const deb of missing) {
      if (!(await cachedOk(dir, deb))) {
        throw new MacvmError('MACVM_IMAGE_BUILD_FAILED', `The download of ${deb.fileName} is missing or does not match its SHA256.`, {
          hint: `Delete ${join(dir, deb.fileName)} and build again; if it persists, run \`apt-get update\`.`,
        });
      }
    }
  }
  return packages.map((deb) => join(dir, deb.fileName));
}

export async function extractPackage(debPath: string, into: string): Promise<void> {
  await mkdir(into, { recursive: true });
  await runTool(`unpack ${debPath}`, 'dpkg-deb', ['-x', debPath, into]);
}
