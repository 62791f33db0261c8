import type { QemuImageManifest } from '../manifest.js';
import { buildCachedImage, intactImage as intactRecipeImage, type ImageBuildOptions } from './cached-build.js';
import { buildLinuxGuest } from './linux-guest.js';

export { missingHostTools } from './host-tools.js';
export type { BuildProgress } from './cached-build.js';

export type BuildLinuxTestOptions = ImageBuildOptions;

/**
 * Bumped whenever what goes into the guest changes, so cached images of an older
 * recipe are rebuilt instead of silently reused.
 */
export const LINUX_TEST_RECIPE = '5';

const RECIPE = { name: 'linux-test', recipe: LINUX_TEST_RECIPE } as const;

/** The minimal guest: Debian's cloud kernel, busybox, dropbear; boots to SSH in ~3 s under TCG. */
export async function buildLinuxTestImage(options: BuildLinuxTestOptions): Promise<QemuImageManifest> {
  return buildCachedImage(RECIPE, options, (out, work, progress) => buildLinuxGuest(out, work, RECIPE, options, progress));
}

/** The manifest of a complete, current-recipe linux-test image in `imageDir`, or undefined. */
export function intactImage(imageDir: string): Promise<QemuImageManifest | undefined> {
  return intactRecipeImage(imageDir, LINUX_TEST_RECIPE);
}
