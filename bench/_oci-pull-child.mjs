/**
 * One `pullImage` in a process of its own, for bench/oci.ts, so macvm's side of the comparison
 * pays process start as skopeo's does:
 *
 *   node bench/_oci-pull-child.mjs '<json: { module, reference, cacheRoot, tartCacheRoot }>'
 *
 * `module` is the URL of the pull module to load: dist/oci/pull.js (compiled, as `macvm image
 * pull` runs it; plain node) or src/oci/pull.ts (then run node with `--import tsx`). Plain
 * JavaScript, so the compiled side starts without tsx (about a second more under load). With
 * `"noop": true` it loads the module and exits: the fixed cost of this process. Prints the
 * PullResult as one JSON line; a failure exits non-zero.
 */
const job = JSON.parse(process.argv[2] ?? '{}');
const { pullImage } = await import(job.module);
if (!job.noop) {
  const result = await pullImage(job.reference, { cacheRoot: job.cacheRoot, tartCacheRoot: job.tartCacheRoot });
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
