import { fileURLToPath } from 'node:url';

/**
 * A script next to `moduleUrl` (pass `import.meta.url`) in the form that is running — the .ts
 * source or the compiled .js in dist/ — and the node flags that run it: from sources, tsx named
 * by absolute URL, so the child may run with any cwd.
 */
export function siblingEntry(moduleUrl: string, name: string): { file: string; nodeArgs: string[] } {
  const here = fileURLToPath(moduleUrl);
  const fromSources = here.endsWith('.ts');
  const file = here.replace(/[^/\\]+\.(ts|js)$/, (_, ext: string) => `${name}.${ext}`);
  return { file, nodeArgs: fromSources ? ['--import', import.meta.resolve('tsx')] : [] };
}
