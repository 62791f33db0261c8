import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { QemuImageManifest } from '../manifest.js';
import { resolveDependencyClosure } from './apt-closure.js';
import { buildCachedImage, intactImage as intactRecipeImage, type ImageBuildOptions } from './cached-build.js';
import { extractPackage } from './debs.js';
import { buildLinuxGuest, type LinuxGuestRecipe } from './linux-guest.js';
import { mergeTree } from './merge-tree.js';
import { checkLibraries } from './library-check.js';

/**
 * linux-browser: the linux-test guest plus Debian's chromium and chromium-driver with their
 * whole run-time dependency closure (Depends/Pre-Depends as apt would pick them, from
 * `apt-cache depends`), fonts and fontconfig, all unpacked from .debs fetched with
 * `apt-get download` — nothing is copied from the build host's own installation. vm.browser()
 * finds /usr/bin/chromedriver and /usr/bin/chromium on the guest's PATH.
 *
 * Heavier than linux-test in every way (~230 MiB of downloads, a ~0.8 GiB base disk, a
 * WebDriver session takes 20–45 s under TCG): for a few end-to-end browser tests, not for
 * every suite.
 */
export const LINUX_BROWSER_RECIPE = '2';

/**
 * What the browser needs; the rest of the closure follows from their dependencies.
 * fonts-dejavu-core is named (it is also fontconfig's first choice) so text renders in the
 * same font on every build.
 */
export const BROWSER_ROOT_PACKAGES = ['chromium', 'chromium-driver', 'fonts-dejavu-core', 'fontconfig-config'];

/** Guest size that runs chromium well under TCG (measured: 2 vCPUs / 2 GiB; see README). */
export const LINUX_BROWSER_CPUS = 2;
export const LINUX_BROWSER_MEMORY = '2GiB';

/**
 * Left out of the guest: documentation, manual pages and message translations (~10 % of
 * the unpacked size), which nothing in a test guest reads. Chromium's own UI strings live
 * in /usr/lib/chromium/locales and stay.
 */
export const PRUNED: readonly string[] = ['usr/share/doc', 'usr/share/man', 'usr/share/info', 'usr/share/lintian', 'usr/share/locale'];

/** Room for chromium's profile, caches and crash dumps on top of ~0.8 GiB of files; the qcow2 base stores only what is used. */
const BROWSER_DISK_SIZE = '3G';

const RECIPE: LinuxGuestRecipe = {
  name: 'linux-browser',
  recipe: LINUX_BROWSER_RECIPE,
  diskSize: BROWSER_DISK_SIZE,
  async extraPackages(progress) {
    progress({ step: 'dependency closure', detail: BROWSER_ROOT_PACKAGES.join(', '), fraction: 0.03 });
    return resolveDependencyClosure(BROWSER_ROOT_PACKAGES);
  },
  extraFacts({ packages }) {
    const version = (name: string) => packages.find((p) => p.name === name)?.version ?? 'unknown';
    return { chromium: version('chromium'), chromedriver: version('chromium-driver'), browserPackages: String(packages.length) };
  },
  async finishRootfs({ rootfs, work, extra, progress }) {
    const browserRoot = join(work, 'browser-packages');
    await mkdir(browserRoot, { recursive: true, mode: 0o755 });
    for (const [index, deb] of extra.debs.entries()) {
      progress({ step: 'unpack browser packages', detail: extra.packages[index]!.name, fraction: 0.56 + (0.06 * index) / extra.debs.length });
      await extractPackage(deb, browserRoot);
    }
    progress({ step: 'root filesystem', detail: `merging ${extra.packages.length} browser packages`, fraction: 0.62 });
    await mergeTree(browserRoot, rootfs, PRUNED);
    // libdbus (which chromium loads) wants a machine id; every clone of one build shares it.
    await writeFile(join(rootfs, 'etc/machine-id'), `${randomBytes(16).toString('hex')}\n`, { mode: 0o444 });
    // A missing library would otherwise show only as a driver that dies at its first start.
    await checkLibraries(rootfs, ['usr/lib/chromium/chromium', 'usr/bin/chromedriver']);
  },
};

export type BuildLinuxBrowserOptions = ImageBuildOptions;

export async function buildLinuxBrowserImage(options: BuildLinuxBrowserOptions): Promise<QemuImageManifest> {
  return buildCachedImage(RECIPE, options, (out, work, progress) => buildLinuxGuest(out, work, RECIPE, options, progress));
}

/** The manifest of a complete, current-recipe linux-browser image in `imageDir`, or undefined. */
export function intactBrowserImage(imageDir: string): Promise<QemuImageManifest | undefined> {
  return intactRecipeImage(imageDir, LINUX_BROWSER_RECIPE);
}
