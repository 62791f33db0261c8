import { join } from 'node:path';
import { MacvmError } from '../errors.js';
import { findCached } from '../oci/image-cache.js';
import type { ImageKind } from '../oci/image-layout.js';
import { pullImage, type PullResult } from '../oci/pull.js';
import type { TransferProgress } from '../oci/transfer-progress.js';
import { ensurePrivateHome, homePaths } from './home.js';

/**
 * Images from OCI registries, as a provider's `prepare` sees them: a reference such as
 * `ghcr.io/cirruslabs/macos-sonoma-base:latest` in a spec becomes a directory in the cache,
 * pulled once on first use (the pull engine holds a lock per digest, so runner processes that
 * start together download it once) and cloned per suite like any local image.
 */

/** Pulled images live beside the built ones: MACVM_HOME/oci/<registry>/<repository>/<digest>/. */
export function registryCacheRoot(home: string): string {
  return join(homePaths(home).home, 'oci');
}

/** What a kind of registry image is called in messages and CLI output. */
export const KIND_NAMES: Record<ImageKind, string> = { tart: 'Tart image', 'macvm-qemu': 'macvm qemu image' };

const KIND_PROVIDERS: Record<ImageKind, string> = { tart: 'the vz or tart provider', 'macvm-qemu': 'the qemu provider' };

export interface RegistryImageOptions {
  home: string;
  /** The kind the calling provider boots; another kind is refused before anything is installed. */
  kind: ImageKind;
  prepareInstall?: (stagingDir: string) => Promise<void>;
  onProgress?: (progress: TransferProgress) => void;
  /** `macvm image pull` asks the registry every time; a spec uses what the cache has (as Testcontainers' default pull policy). */
  refresh?: boolean;
  insecure?: boolean;
  env?: NodeJS.ProcessEnv;
}

/** The local directory of a registry image: from the cache when present, else pulled now. */
export async function registryImage(reference: string, options: RegistryImageOptions): Promise<PullResult> {
  await ensurePrivateHome(options.home);
  const cacheRoot = registryCacheRoot(options.home);
  if (!options.refresh) {
    const cached = await findCached(cacheRoot, reference);
    if (cached) {
      refuseOtherKind(reference, cached.metadata.kind, options.kind);
      return { reference, digest: cached.digest, dir: cached.dir, kind: cached.metadata.kind, fromCache: true, source: 'cache', sizeBytes: cached.metadata.sizeBytes };
    }
  }
  const pulled = await pullImage(reference, {
    cacheRoot,
    insecure: options.insecure,
    env: options.env,
    onProgress: options.onProgress,
    // Checked on the manifest, before any blob is downloaded or the wrong provider's hook runs.
    checkKind: (kind) => refuseOtherKind(reference, kind, options.kind),
    prepareInstall: options.prepareInstall,
  });
  refuseOtherKind(reference, pulled.kind, options.kind);
  return pulled;
}

function refuseOtherKind(reference: string, found: ImageKind, wanted: ImageKind): void {
  if (found === wanted) return;
  throw new MacvmError('MACVM_IMAGE_FORMAT_UNSUPPORTED', `${reference} is a ${KIND_NAMES[found]}; this provider boots a ${KIND_NAMES[wanted]}.`, {
    hint: `Run it with ${KIND_PROVIDERS[found]} (withMacVM({ provider }) or images["<name>"].provider in macvm.config.ts).`,
  });
}
