/**
 * `npm run bench [name...]`: runs the benchmarks under bench/ one after another. Each
 * module exports `run()`, measures side by side within the same run, and prints its
 * figures; nothing here asserts a time.
 */
import { readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const wanted = process.argv.slice(2);
const modules = (await readdir(here)).filter((f) => f.endsWith('.ts') && f !== 'run.ts' && !f.startsWith('_')).sort();
// A name picks its own module when there is one (`oci` is oci.ts, not oci-lz4.ts too), else every module it begins.
const picks = (module: string, name: string) => (modules.includes(`${name}.ts`) ? module === `${name}.ts` : module.startsWith(name));
const chosen = wanted.length ? modules.filter((m) => wanted.some((w) => picks(m, w))) : modules;
if (chosen.length === 0) {
  console.error(`No benchmark matches ${wanted.join(', ')}; have: ${modules.map((m) => m.replace(/\.ts$/, '')).join(', ')}`);
  process.exit(2);
}
for (const file of chosen) {
  console.log(`\n== ${file.replace(/\.ts$/, '')}`);
  const module = (await import(pathToFileURL(join(here, file)).href)) as { run?: () => Promise<void> };
  if (typeof module.run !== 'function') {
    console.error(`${file} exports no run()`);
    process.exitCode = 1;
    continue;
  }
  await module.run();
}
