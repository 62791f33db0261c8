/**
 * The layers of src/, as DESIGN.md draws them ("Dependencies point downwards only"), and the
 * check that keeps them so: test/unit/layers.test.ts runs it in `npm test`. Playwright keeps a
 * DEPS.list per folder; here one table says it all. Run it by hand with
 * `node --import tsx scripts/check-layers.ts`.
 *
 * A folder may import its own files and any folder in a LOWER row. It never imports a folder in
 * a higher row, nor one beside it in its own row. Every import counts: `import type`,
 * `export … from`, dynamic `import('…')`, `import('…')` in a type: so the folder graph has no
 * cycle, at compile time either.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/** Top to bottom. A name is a folder of src/, or a file at its top (index.ts, errors.ts) without `.ts`. */
export const LAYERS: readonly (readonly string[])[] = [
  ['index'], // the package's public surface
  ['fixtures'], // withMacVM(), the vitest fixture, matchers
  ['runner'], // CLI, vitest preset, config, slots, reaper
  ['report'], // HTML report, JUnit XML (see ONLY)
  ['machine'], // the MacVM facade: a provider's running VM and a guest session, made one object
  ['vm', 'guest'], // providers (one sub-folder each) | the guest session: side by side
  ['snapshot', 'bench', 'oci'], // … | … | OCI registries and Tart's image format (no VM knowledge)
  ['shared'], // plain types and schemas: result and bench records, guest vocabulary, Deadline
  ['util'],
  ['errors'],
];

/** Folders held to a shorter list than their row allows. */
export const ONLY: Readonly<Record<string, readonly string[]>> = {
  // The report reads result files; it imports no runtime code.
  report: ['shared', 'util', 'errors'],
};

/**
 * Folders whose sub-folders are providers (src/vm/qemu/, src/vm/vz/, …). A provider imports its
 * own sub-folder, the parent's own files (src/vm/*.ts) and lower layers, never another provider.
 */
export const PROVIDER_PARENTS: readonly string[] = ['vm'];

export type Rule = 'upward' | 'side-by-side' | 'runtime-code' | 'provider-to-provider' | 'unlisted-folder';

export interface Import {
  /** Path relative to the project root, with `/`: `src/vm/start.ts`. */
  file: string;
  line: number;
  specifier: string;
  /** Where it points, relative to the project root, with `/` (extension as written). */
  target: string;
}

export interface Violation extends Import {
  rule: Rule;
  from: string;
  to: string;
  message: string;
}

/** Every import of one source text whose specifier is relative (packages and `node:` are not layers). */
export function importsOf(file: string, text: string): Import[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const found: Import[] = [];
  const add = (node: ts.Node | undefined) => {
    if (!node || !(ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node))) return;
    const specifier = node.text;
    if (!specifier.startsWith('./') && !specifier.startsWith('../')) return;
    const { line } = source.getLineAndCharacterOfPosition(node.getStart(source));
    found.push({ file, line: line + 1, specifier, target: posix.normalize(posix.join(posix.dirname(file), specifier)) });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) add(node.moduleSpecifier);
    else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) add(node.moduleReference.expression);
    else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) add(node.argument.literal);
    else if (ts.isCallExpression(node) && (node.expression.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(node.expression) && node.expression.text === 'require'))) {
      add(node.arguments[0]);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** `src/vm/qemu/boot.ts` → `vm`; `src/index.ts` → `index`; undefined outside src/. */
export function folderOf(path: string, srcDir = 'src'): string | undefined {
  const parts = posix.relative(srcDir, path).split('/');
  if (parts[0] === '..' || parts[0] === '') return undefined;
  return parts.length === 1 ? parts[0]!.replace(/\.(ts|js|mts|mjs)$/, '') : parts[0];
}

/** `src/vm/qemu/boot.ts` → `qemu` when vm is a provider parent; undefined for `src/vm/start.ts`. */
function providerOf(path: string, srcDir: string): string | undefined {
  const parts = posix.relative(srcDir, path).split('/');
  return parts.length > 2 && PROVIDER_PARENTS.includes(parts[0]!) ? parts[1] : undefined;
}

function rowOf(folder: string): number {
  return LAYERS.findIndex((row) => row.includes(folder));
}

/** Whether `from` may import `to` by the table, and if not, which rule says no and why. */
export function ruling(from: string, to: string): { rule: Rule; why: string } | undefined {
  if (from === to) return undefined;
  const fromRow = rowOf(from);
  const toRow = rowOf(to);
  if (fromRow < 0) return { rule: 'unlisted-folder', why: `src/${from} is not in the LAYERS table of scripts/check-layers.ts: give it a row` };
  if (toRow < 0) return { rule: 'unlisted-folder', why: `src/${to} is not in the LAYERS table of scripts/check-layers.ts: give it a row` };
  if (toRow < fromRow) return { rule: 'upward', why: `${to} is a higher layer than ${from}; dependencies point downwards only` };
  if (toRow === fromRow) return { rule: 'side-by-side', why: `${from} and ${to} sit side by side; neither imports the other` };
  const only = ONLY[from];
  if (only && !only.includes(to)) return { rule: 'runtime-code', why: `${from} may import only ${only.join(', ')} (it reads result files; it imports no runtime code)` };
  return undefined;
}

/** Checks a set of source files (path relative to the project root → text). */
export function checkLayers(files: ReadonlyMap<string, string>, srcDir = 'src'): { imports: Import[]; violations: Violation[] } {
  const imports: Import[] = [];
  const violations: Violation[] = [];
  for (const [file, text] of files) {
    for (const found of importsOf(file, text)) {
      imports.push(found);
      const from = folderOf(found.file, srcDir);
      const to = folderOf(found.target, srcDir);
      if (from === undefined || to === undefined) continue;
      let verdict = ruling(from, to);
      if (!verdict && from === to) {
        const fromProvider = providerOf(found.file, srcDir);
        const toProvider = providerOf(found.target, srcDir);
        if (fromProvider && toProvider && fromProvider !== toProvider) {
          verdict = {
            rule: 'provider-to-provider',
            why: `provider ${from}/${fromProvider} imports provider ${from}/${toProvider}; move what both need to a shared file of ${from}/ or lower`,
          };
        }
      }
      if (verdict) {
        violations.push({ ...found, rule: verdict.rule, from, to, message: `${found.file}:${found.line}: ${verdict.rule}: imports '${found.specifier}': ${verdict.why}` });
      }
    }
  }
  return { imports, violations };
}

/** The folder-level graph (`vm/qemu` counts as `vm`) with one example import per edge. */
export function folderGraph(imports: readonly Import[], srcDir = 'src'): Map<string, Map<string, Import>> {
  const graph = new Map<string, Map<string, Import>>();
  for (const found of imports) {
    const from = folderOf(found.file, srcDir);
    const to = folderOf(found.target, srcDir);
    if (from === undefined || to === undefined || from === to) continue;
    if (!graph.has(from)) graph.set(from, new Map());
    if (!graph.get(from)!.has(to)) graph.get(from)!.set(to, found);
  }
  return graph;
}

/** One cycle of the graph as `a → b → a` with an example import per step, or undefined. */
export function findCycle(graph: ReadonlyMap<string, ReadonlyMap<string, Import>>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (node: string): string[] | undefined => {
    state.set(node, 'open');
    path.push(node);
    for (const next of [...(graph.get(node)?.keys() ?? [])].sort()) {
      if (state.get(next) === 'open') {
        const loop = [...path.slice(path.indexOf(next)), next];
        return loop.slice(1).map((to, i) => {
          const example = graph.get(loop[i]!)!.get(to)!;
          return `${loop[i]} → ${to} (${example.file}:${example.line})`;
        });
      }
      if (!state.has(next)) {
        const found = visit(next);
        if (found) return found;
      }
    }
    path.pop();
    state.set(node, 'done');
    return undefined;
  };
  for (const node of [...graph.keys()].sort()) {
    if (!state.has(node)) {
      const found = visit(node);
      if (found) return found;
    }
  }
  return undefined;
}

/** Every .ts/.js source under `dir`, keyed by its path relative to `root`, with `/`. */
export function readSourceTree(root: string, dir = 'src'): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (at: string) => {
    for (const entry of readdirSync(at, { withFileTypes: true })) {
      const path = join(at, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (/\.(ts|mts|js|mjs)$/.test(entry.name) && !entry.name.endsWith('.d.ts')) {
        files.set(relative(root, path).split(sep).join('/'), readFileSync(path, 'utf8'));
      }
    }
  };
  walk(join(root, dir));
  return files;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  const { imports, violations } = checkLayers(readSourceTree(root));
  const cycle = findCycle(folderGraph(imports));
  for (const violation of violations) console.error(violation.message);
  if (cycle) console.error(`folder cycle: ${cycle.join(', ')}`);
  console.log(`${imports.length} imports checked; ${violations.length} break a layer rule${cycle ? '; the folder graph has a cycle' : ''}.`);
  process.exitCode = violations.length > 0 || cycle ? 1 : 0;
}
