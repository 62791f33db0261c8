import { createHash } from 'node:crypto';
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { MacvmError } from '../../errors.js';
import { isRegistryReference } from '../../oci/reference.js';
import { homePaths, imageNotFound } from '../../vm/home.js';
import type { ImageInput, ImageListing } from '../../vm/image-listing.js';
import type { ImageRecipe } from '../../vm/provider-definition.js';
import { providerDefinitions } from '../../vm/registry.js';
import { listRuntimeDirs } from '../../vm/runtime-dir.js';
import type { Command } from './command.js';
import { parseCommandArgs, table, writeJson } from './args.js';
import { progressPrinter } from './progress-printer.js';

/** Images macvm can build itself, from every provider's recipes. macOS images come from `macvm image create` (vz) or `tart pull`. */
function recipes(): Record<string, ImageRecipe> {
  return Object.assign({}, ...providerDefinitions().map((d) => d.imageRecipes ?? {}));
}

/** `image build --help`'s list, from the recipes' own summaries. */
function recipeHelp(): string {
  return Object.entries(recipes())
    .map(([name, recipe]) => `  ${name}\n${wrap(recipe.summary, 72).map((line) => `      ${line}`).join('\n')}`)
    .join('\n');
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && line.length + word.length + 1 > width) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(line);
  return lines;
}

export const imageLsCommand: Command = {
  path: ['image', 'ls'],
  summary: 'List local images',
  help: `Usage: macvm image ls [--json]

Lists the images under MACVM_HOME/images — qemu images and vz bundles made by
\`macvm image create\` — and the images pulled from registries (MACVM_HOME/oci, by reference,
with their manifest digest), with their OS, architecture and size on disk (blocks in use: a
pulled disk is sparse). Tart's own images: \`tart list\`.

INPUTS: for images macvm built from Debian packages, how many .debs went in and a short
digest of their names, versions and SHA256s (equal digests: the same inputs). --json
lists every one under \`inputs\` (name, version, architecture, sha256 of the .deb).`,
  async run({ argv, stdout }) {
    const { values } = parseCommandArgs('image ls', argv, { json: { type: 'boolean' } }, false);
    const { pulledImageListings } = await import('./image-registry.js');
    const images = [...(await listImages()), ...(await pulledImageListings())];
    if (values.json) {
      writeJson(stdout, images);
      return 0;
    }
    if (images.length === 0) {
      stdout.write('No images. Build the test guest with `macvm image build linux-test`.\n');
      return 0;
    }
    const rows = [['NAME', 'PROVIDER', 'OS', 'ARCH', 'DISK', 'CREATED', 'INPUTS', 'DIGEST', 'STATUS']];
    for (const image of images) {
      const inputs = image.inputs ? `${image.inputs.length} debs ${inputsDigest(image.inputs)}` : '-';
      const digest = image.digest ? image.digest.replace(/^sha256:/, '').slice(0, 12) : '-';
      rows.push([image.name, image.provider ?? '?', image.os ?? '?', image.arch ?? '?', image.diskMiB === undefined ? '?' : `${image.diskMiB} MiB`, image.createdAt?.slice(0, 19) ?? '?', inputs, digest, image.status]);
    }
    stdout.write(table(rows));
    return 0;
  },
};

export const imageBuildCommand: Command = {
  path: ['image', 'build'],
  summary: 'Build an image from a recipe',
  get help() {
    return `Usage: macvm image build <recipe> [--force] [--json]

Recipes:
${recipeHelp()}

The build is cached: with an intact image it does nothing unless --force is given.`;
  },
  async run({ argv, stdout, stderr }) {
    const { values, positionals } = parseCommandArgs('image build', argv, { force: { type: 'boolean' }, json: { type: 'boolean' } });
    const name = positionals[0];
    const known = recipes();
    const recipe = name ? known[name] : undefined;
    if (!name || !recipe) {
      throw new MacvmError('MACVM_BAD_ARGUMENT', `macvm image build: ${name ? `no recipe "${name}"` : 'which recipe?'}; known: ${Object.keys(known).join(', ')}.`, {
        hint: 'macOS images are made with `macvm image create <name> --ipsw latest` (vz) or pulled with `tart pull`.',
      });
    }
    const started = Date.now();
    const progress = progressPrinter(stderr, { quiet: values.json });
    const manifest = await recipe.build({ imageDir: homePaths().image(name), force: values.force, onProgress: progress.update });
    progress.done();
    if (values.json) writeJson(stdout, manifest);
    else stdout.write(`${name} ready (${((Date.now() - started) / 1000).toFixed(1)}s) in ${homePaths().image(name)}\n`);
    return 0;
  },
};

export const imageRmCommand: Command = {
  path: ['image', 'rm'],
  summary: 'Remove a local image',
  help: `Usage: macvm image rm <name|reference>... [--force]

Deletes the image (a pulled one by its reference: its files and every tag naming it). Refuses while clones of it exist (they read from its disk) unless --force.`,
  async run({ argv, stdout }) {
    const { values, positionals } = parseCommandArgs('image rm', argv, { force: { type: 'boolean' } });
    if (positionals.length === 0) throw new MacvmError('MACVM_BAD_ARGUMENT', 'macvm image rm: which image?');
    const clones = await listRuntimeDirs();
    for (const name of positionals) {
      if (isRegistryReference(name)) {
        const { removePulledImage } = await import('./image-registry.js');
        stdout.write(`${await removePulledImage(name, Boolean(values.force))}\n`);
        continue;
      }
      const dir = homePaths().image(name);
      if (!(await exists(dir))) throw await imageNotFound(name);
      const users = clones.filter((c) => c.record?.image === name);
      if (users.length > 0 && !values.force) {
        throw new MacvmError('MACVM_BAD_ARGUMENT', `Image "${name}" is in use by ${users.map((u) => u.id).join(', ')}.`, {
          hint: 'Remove those VMs first (`macvm vm rm <id>`), or pass --force.',
        });
      }
      await rm(dir, { recursive: true, force: true });
      stdout.write(`${name} removed\n`);
    }
    return 0;
  },
};

/** 12 hex digits over every input's name, version and sha256: equal for the same inputs. */
export function inputsDigest(inputs: readonly ImageInput[]): string {
  const lines = inputs.map((i) => `${i.name} ${i.version} ${i.architecture} ${i.sha256}\n`).sort();
  return createHash('sha256').update(lines.join('')).digest('hex').slice(0, 12);
}

async function listImages(): Promise<ImageListing[]> {
  const root = homePaths().images;
  let names: string[] = [];
  try {
    names = (await readdir(root)).filter((n) => !n.startsWith('.'));
  } catch {
    return [];
  }
  return Promise.all(names.sort().map((name) => describeImage(name, join(root, name))));
}

/** Whichever provider recognises the directory describes it (qemu: image.json; vz: a Tart bundle). */
async function describeImage(name: string, dir: string): Promise<ImageListing> {
  for (const definition of providerDefinitions()) {
    const listing = await definition.describeImage?.(name, dir);
    if (listing) return listing;
  }
  return { name, dir, status: 'corrupt' };
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
