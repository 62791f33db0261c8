import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { MacvmError } from '../../errors.js';
import { findCached, listCachedImages, repositoryDir, type CachedImageEntry } from '../../oci/image-cache.js';
import { readImageLayout, type ImageKind } from '../../oci/image-layout.js';
import { pullImage } from '../../oci/pull.js';
import { pushImage } from '../../oci/push.js';
import { isRegistryReference, parseImageReference } from '../../oci/reference.js';
import type { TransferProgress } from '../../oci/transfer-progress.js';
import { ensurePrivateHome, homePaths, imageNotFound, macvmHome } from '../../vm/home.js';
import type { ImageListing } from '../../vm/image-listing.js';
import type { ProviderDefinition, RegistryImageSupport } from '../../vm/provider-definition.js';
import { KIND_NAMES, registryCacheRoot } from '../../vm/registry-images.js';
import { providerDefinitions } from '../../vm/registry.js';
import { listRuntimeDirs } from '../../vm/runtime-dir.js';
import type { Command } from './command.js';
import { parseCommandArgs, writeJson } from './args.js';
import { progressPrinter, type ProgressEvent } from './progress-printer.js';

const AUTH_HELP = `Credentials, as Tart reads them: TART_REGISTRY_USERNAME and TART_REGISTRY_PASSWORD
(only for TART_REGISTRY_HOSTNAME when that is set), else ~/.docker/config.json (\`auths\`,
\`credHelpers\`, \`credsStore\`: what \`docker login\` writes). Public images need none. Plain
HTTP is used only for a registry on this host's loopback, or with --insecure.`;

export const imagePullCommand: Command = {
  path: ['image', 'pull'],
  summary: 'Pull an image from an OCI registry (Tart images, macvm qemu images)',
  help: `Usage: macvm image pull <registry>/<repository>[:tag|@sha256:…] [--insecure] [--json]

Downloads the image into MACVM_HOME/oci/ (cached by manifest digest), verifying every blob and
every decompressed disk piece, and installs it atomically. A Tart image (macOS bundles from
ghcr.io/cirruslabs/…) boots with the vz provider — or is found in Tart's own cache when Tart
pulled it already; a macvm qemu image (pushed with \`macvm image push\`) boots with qemu.
Pulling a tag that moved fetches only the disk pieces that changed; an interrupted pull resumes.
Specs may name a reference as their image: it is pulled once on first use.

${AUTH_HELP}`,
  async run({ argv, stdout, stderr }) {
    const { values, positionals } = parseCommandArgs('image pull', argv, { insecure: { type: 'boolean' }, json: { type: 'boolean' } });
    const reference = oneReference('image pull', positionals);
    const home = macvmHome();
    await ensurePrivateHome(home);
    const progress = progressPrinter(stderr, { quiet: values.json });
    const started = Date.now();
    const pulled = await pullImage(reference, {
      cacheRoot: registryCacheRoot(home),
      insecure: values.insecure,
      onProgress: (p) => progress.update(transferEvent(p)),
      prepareInstall: async (stagingDir, manifest) => {
        // The provider that boots this kind readies it (qemu: a fresh client key made here).
        await supportFor(readImageLayout(manifest, reference).kind)?.registryImages?.prepareInstall?.(stagingDir);
      },
    });
    progress.done();
    if (values.json) {
      writeJson(stdout, pulled);
      return 0;
    }
    const how = pulled.source === 'registry' ? `pulled in ${((Date.now() - started) / 1000).toFixed(1)}s` : pulled.source === 'tart-cache' ? "found in Tart's cache" : 'already in the cache';
    stdout.write(`${pulled.reference} ${pulled.digest} (${KIND_NAMES[pulled.kind]}, ${how})\n  ${pulled.dir}\n`);
    return 0;
  },
};

export const imagePushCommand: Command = {
  path: ['image', 'push'],
  summary: 'Push a local image to an OCI registry',
  help: `Usage: macvm image push <image> <registry>/<repository>[:tag] [--insecure] [--json]

<image> is a local image (\`macvm image ls\`) or a pulled one, by reference. A vz bundle goes up in
Tart's format (config.v1, disk.v2 in 512 MiB LZ4 pieces, nvram.v1), so Tart and Orchard can run
it; a qemu image goes up with macvm's own media types (see the README). Blobs the registry
already has are not sent again.

A qemu image carries its pinned guest host key, never its client private key: whoever pulls it
gets a fresh client key, which the guest is handed at boot.

${AUTH_HELP}`,
  async run({ argv, stdout, stderr }) {
    const { values, positionals } = parseCommandArgs('image push', argv, { insecure: { type: 'boolean' }, json: { type: 'boolean' } });
    const [source, target] = positionals;
    if (!source || !target || positionals.length > 2) {
      throw new MacvmError('MACVM_BAD_ARGUMENT', 'macvm image push: give the local image and the reference to push it to.', {
        hint: 'e.g. `macvm image push linux-test registry.example:5000/team/linux-test:2026-11`',
      });
    }
    parseImageReference(target);
    const { dir, support } = await localImage(source);
    const plan = await support.pushPlan(dir);
    const progress = progressPrinter(stderr, { quiet: values.json });
    const started = Date.now();
    const pushed = await pushImage(plan, target, { insecure: values.insecure, onProgress: (p) => progress.update(transferEvent(p)) });
    progress.done();
    if (values.json) writeJson(stdout, pushed);
    else stdout.write(`${pushed.reference} ${pushed.digest} (pushed in ${((Date.now() - started) / 1000).toFixed(1)}s)\n`);
    return 0;
  },
};

/** `image rm` of a pulled image: its digest dir and every tag pointing at it; refused while a clone of it exists. */
export async function removePulledImage(reference: string, force: boolean): Promise<string> {
  const root = registryCacheRoot(macvmHome());
  const cached = await findCached(root, reference);
  if (!cached) throw new MacvmError('MACVM_IMAGE_NOT_FOUND', `No pulled image ${reference}.`, { hint: 'See `macvm image ls`.' });
  const entry = (await listCachedImages(root)).find((e) => e.dir === cached.dir);
  const names = entry?.references ?? [reference];
  const users = (await listRuntimeDirs()).filter((c) => c.record?.image !== undefined && names.includes(c.record.image));
  if (users.length > 0 && !force) {
    throw new MacvmError('MACVM_BAD_ARGUMENT', `Image ${reference} is in use by ${users.map((u) => u.id).join(', ')}.`, {
      hint: 'Remove those VMs first (`macvm vm rm <id>`), or pass --force.',
    });
  }
  for (const name of names) {
    const { registry, repository, tag, digest } = parseImageReference(name);
    if (tag && !digest) await rm(join(repositoryDir(root, registry, repository), tag), { force: true });
  }
  await rm(cached.dir, { recursive: true, force: true });
  return `${names[0]} removed (${cached.digest})`;
}

/** `image ls` rows for pulled images: described by the provider that boots their kind. */
export async function pulledImageListings(): Promise<ImageListing[]> {
  const entries = await listCachedImages(registryCacheRoot(macvmHome()));
  return Promise.all(entries.map(async (entry) => describePulled(entry)));
}

async function describePulled(entry: CachedImageEntry): Promise<ImageListing> {
  const [name] = entry.references;
  const definition = supportFor(entry.kind);
  const described = await definition?.describeImage?.(name!, entry.dir);
  return {
    ...(described ?? { name: name!, dir: entry.dir, status: 'corrupt' as const }),
    createdAt: entry.pulledAt,
    diskMiB: Math.round(entry.diskUsageBytes / 2 ** 20),
    digest: entry.digest,
    references: entry.references,
  };
}

/** A local image by name (MACVM_HOME/images/<name>), or a pulled one by reference, with its provider's push support. */
async function localImage(source: string): Promise<{ dir: string; support: RegistryImageSupport }> {
  if (isRegistryReference(source)) {
    const cached = await findCached(registryCacheRoot(macvmHome()), source);
    if (!cached) throw new MacvmError('MACVM_IMAGE_NOT_FOUND', `No pulled image ${source}.`, { hint: `Pull it first (\`macvm image pull ${source}\`), or see \`macvm image ls\`.` });
    const support = supportFor(cached.metadata.kind)?.registryImages;
    if (!support) throw new MacvmError('MACVM_NOT_SUPPORTED', `No provider here pushes ${KIND_NAMES[cached.metadata.kind]}s.`);
    return { dir: cached.dir, support };
  }
  const dir = homePaths().image(source);
  if (!(await stat(dir).catch(() => undefined))) throw await imageNotFound(source);
  for (const definition of providerDefinitions()) {
    const listing = await definition.describeImage?.(source, dir);
    if (!listing) continue;
    if (listing.status !== 'ok') throw new MacvmError('MACVM_IMAGE_CORRUPT', `Image "${source}" is damaged; it cannot be pushed.`, { hint: 'Rebuild it, then push again.' });
    if (!definition.registryImages) throw new MacvmError('MACVM_NOT_SUPPORTED', `The ${definition.name} provider's images cannot be pushed to a registry.`);
    return { dir, support: definition.registryImages };
  }
  throw new MacvmError('MACVM_IMAGE_CORRUPT', `No provider recognises ${dir} as one of its images.`, { hint: 'See `macvm image ls`.' });
}

/** The provider that boots a kind of registry image and readies it: the default provider first when several do. */
function supportFor(kind: ImageKind): ProviderDefinition | undefined {
  return providerDefinitions().find((d) => d.registryImages?.kind === kind);
}

function oneReference(verb: string, positionals: string[]): string {
  const [reference] = positionals;
  if (!reference || positionals.length > 1) {
    throw new MacvmError('MACVM_BAD_ARGUMENT', `macvm ${verb}: give one image reference.`, { hint: 'e.g. `macvm image pull ghcr.io/cirruslabs/macos-sonoma-base:latest`' });
  }
  parseImageReference(reference);
  return reference;
}

/** "download — 120.0 MiB of 800.0 MiB, 95.2 MiB/s, ETA 7s" */
export function transferEvent(progress: TransferProgress): ProgressEvent {
  const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  const parts: string[] = [];
  if (progress.totalBytes > 0) parts.push(`${mib(progress.doneBytes)} of ${mib(progress.totalBytes)}`);
  if (progress.bytesPerSecond > 0) parts.push(`${mib(progress.bytesPerSecond)}/s`);
  if (progress.etaSeconds !== undefined && progress.doneBytes < progress.totalBytes) parts.push(`ETA ${Math.ceil(progress.etaSeconds)}s`);
  if (progress.detail) parts.push(progress.detail);
  return {
    step: progress.phase,
    ...(parts.length > 0 ? { detail: parts.join(', ') } : {}),
    ...(progress.totalBytes > 0 ? { fraction: Math.min(1, progress.doneBytes / progress.totalBytes) } : {}),
  };
}
