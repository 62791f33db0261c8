import { stat } from 'node:fs/promises';
import type { ProviderName } from './types.js';

/** One row of `macvm image ls`: an image directory under MACVM_HOME/images. */
export interface ImageListing {
  name: string;
  dir: string;
  /** Which provider boots it; unknown for a folder no provider recognises. */
  provider?: ProviderName;
  status: 'ok' | 'corrupt';
  os?: string;
  arch?: string;
  createdAt?: string;
  diskMiB?: number;
  /** The .debs a built image was made from (image.json `inputs`); absent for older builds and other images. */
  inputs?: ImageInput[];
  /** A pulled image's manifest digest (sha256:…); absent for images built or created here. */
  digest?: string;
  /** A pulled image's names: `host/repo:tag` for each tag that points at it, and `host/repo@sha256:…`. */
  references?: string[];
}

/** An intact image's row: what its provider read of it, and the space its disk really takes. */
export async function intactImage(facts: Omit<ImageListing, 'status' | 'diskMiB'>, disk: string): Promise<ImageListing> {
  // Sparse and cloned files take less than their length: count the blocks.
  const { blocks } = await stat(disk);
  return { ...facts, status: 'ok', diskMiB: Math.round((blocks * 512) / 2 ** 20) };
}

/** One .deb an image was built from. */
export interface ImageInput {
  name: string;
  version: string;
  architecture: string;
  /** SHA256 of the .deb file (apt's checksum, verified against the downloaded file). */
  sha256: string;
}
