import { MacvmError } from '../../../errors.js';
import { runTool } from './run-tool.js';

/**
 * The run-time dependency closure of some Debian packages, as apt would install it with
 * --no-install-recommends, computed from `apt-cache depends --recurse` (one call, no root,
 * no dpkg database): Depends and Pre-Depends only, and for each dependency ONE package —
 * the first alternative, or one already chosen, as apt's own resolver prefers. Taking every
 * alternative and every provider of a virtual package instead (what the recursive listing
 * holds) would drag in GNOME and KDE portals for chromium.
 */

/** One alternative of a dependency: a real package, or a virtual one with its providers. */
export interface DependencyAlternative {
  name: string;
  /** Written as <name> by apt-cache: no package of that name exists (virtual or unknown). */
  virtual: boolean;
  /** For a virtual name: the real packages apt-cache lists as providing it. */
  providers: string[];
}

/** `a | b | c`: satisfied by any one of them. */
export type DependencyGroup = DependencyAlternative[];

export interface PackageDependencies {
  name: string;
  /** A stanza apt-cache printed as <name>: no real package. */
  virtual: boolean;
  groups: DependencyGroup[];
}

const DEPENDENCY_KINDS = new Set(['Depends', 'PreDepends']);

/** Architecture qualifiers apt-cache prints (`perl:any`); another architecture's package is not ours. */
function normalizeName(raw: string, arch: string): string | undefined {
  const [name, qualifier] = raw.split(':');
  if (!name) return undefined;
  if (qualifier === undefined || qualifier === 'any' || qualifier === arch || qualifier === 'all' || qualifier === 'native') return name;
  return undefined;
}

function unbracket(text: string): { name: string; virtual: boolean } {
  const match = /^<(.+)>$/.exec(text);
  return match ? { name: match[1]!, virtual: true } : { name: text, virtual: false };
}

/**
 * Parses `apt-cache depends [--recurse]` output:
 *
 *   chromium                      a package (column 0; <name> for a virtual one)
 *     Depends: libasound2         a dependency
 *    |Depends: libgtk-3-0         '|': this OR the next line
 *     Depends: libgtk-4-1
 *     Depends: <gsettings-backend>   a virtual name...
 *       dconf-gsettings-backend      ...and the packages that provide it
 *
 * Only Depends and PreDepends are kept. Names qualified with another architecture are dropped.
 */
export function parseAptDepends(text: string, arch = 'amd64'): Map<string, PackageDependencies> {
  const packages = new Map<string, PackageDependencies>();
  let current: PackageDependencies | undefined;
  let group: DependencyGroup | undefined;
  let continues = false;
  let last: DependencyAlternative | undefined;
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    if (!/^\s/.test(line)) {
      const { name: raw, virtual } = unbracket(line.trim());
      const name = normalizeName(raw, arch);
      group = undefined;
      last = undefined;
      continues = false;
      if (name === undefined) {
        current = undefined;
        continue;
      }
      // A package listed twice (once per version) keeps its first listing; the rest is read and dropped.
      current = { name, virtual, groups: [] };
      if (!packages.has(name)) packages.set(name, current);
      continue;
    }
    if (!current) continue;
    const dependency = /^ ([ |])([A-Za-z-]+): (.+)$/.exec(line);
    if (dependency) {
      const [, bar, kind, target] = dependency;
      if (!DEPENDENCY_KINDS.has(kind!)) {
        // A non-dependency line ends any alternative chain.
        group = undefined;
        last = undefined;
        continues = false;
        continue;
      }
      const { name: raw, virtual } = unbracket(target!.trim());
      const name = normalizeName(raw, arch);
      if (!continues || !group) {
        group = [];
        current.groups.push(group);
      }
      continues = bar === '|';
      if (name === undefined) {
        last = undefined;
        continue;
      }
      last = { name, virtual, providers: [] };
      group.push(last);
      continue;
    }
    const provider = /^ {4}(\S+)$/.exec(line);
    if (provider && last?.virtual) {
      const name = normalizeName(provider[1]!, arch);
      if (name && !last.providers.includes(name)) last.providers.push(name);
    }
  }
  // A chain whose every alternative was another architecture's is satisfied by nothing we can take.
  for (const pkg of packages.values()) pkg.groups = pkg.groups.filter((g) => g.length > 0);
  return packages;
}

/** The packages that could satisfy one alternative: itself when real, else its real providers. */
function candidatesOf(alternative: DependencyAlternative, graph: Map<string, PackageDependencies>): string[] {
  const isReal = (name: string) => graph.get(name)?.virtual === false;
  if (!alternative.virtual) return isReal(alternative.name) ? [alternative.name] : [];
  return alternative.providers.filter(isReal);
}

/**
 * Walks the graph from `roots`, choosing one package per dependency: an alternative (or
 * provider) that is already chosen if there is one, else the first real one. Returns the
 * chosen packages in the order they were reached (roots first). A dependency nothing in
 * the graph can satisfy is an error naming the chain that led to it.
 */
export function chooseClosure(graph: Map<string, PackageDependencies>, roots: readonly string[]): string[] {
  const chosen = new Set<string>();
  const wantedBy = new Map<string, string>();
  const queue: string[] = [];
  const take = (name: string, parent?: string) => {
    if (chosen.has(name)) return;
    chosen.add(name);
    if (parent) wantedBy.set(name, parent);
    queue.push(name);
  };
  for (const root of roots) {
    if (graph.get(root)?.virtual !== false) {
      throw new MacvmError('MACVM_IMAGE_BUILD_FAILED', `apt knows no package ${root} to put in the image.`, {
        hint: 'Refresh the package lists with `apt-get update` (as root) and build again.',
      });
    }
    take(root);
  }
  while (queue.length > 0) {
    const name = queue.shift()!;
    for (const group of graph.get(name)!.groups) {
      const options = group.map((alternative) => candidatesOf(alternative, graph));
      if (options.some((candidates) => candidates.some((c) => chosen.has(c)))) continue;
      const pick = options.find((candidates) => candidates.length > 0)?.[0];
      if (!pick) {
        const chain = [name];
        for (let at = wantedBy.get(name); at; at = wantedBy.get(at)) chain.unshift(at);
        const wanted = group.map((a) => (a.virtual ? `<${a.name}>` : a.name)).join(' | ');
        throw new MacvmError('MACVM_IMAGE_BUILD_FAILED', `No installable package satisfies "${wanted}", needed by ${chain.join(' → ')}.`, {
          hint: 'Refresh the package lists with `apt-get update` (as root); if it persists, the Debian release changed its packages — update the recipe.',
          details: { dependency: wanted, chain },
        });
      }
      take(pick, name);
    }
  }
  return [...chosen];
}

/** The closure of `roots` from this host's apt sources (one apt-cache call, ~2 s). */
export async function resolveDependencyClosure(roots: readonly string[], arch = 'amd64'): Promise<string[]> {
  const text = await runTool('resolve package dependencies', 'apt-cache', [
    'depends', '--recurse',
    '--no-recommends', '--no-suggests', '--no-conflicts', '--no-breaks', '--no-replaces', '--no-enhances',
    ...roots,
  ]);
  return chooseClosure(parseAptDepends(text, arch), roots);
}
