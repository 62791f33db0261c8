import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { MacvmError, messageOf } from '../../errors.js';

/**
 * Orchard's CLI keeps its "contexts" in $ORCHARD_HOME/.orchard/orchard.yml (default ~/.orchard),
 * written by `orchard context create` (internal/config/config.go, context.go, handle.go,
 * internal/orchardhome/orchardhome.go):
 *
 *   default-context: default
 *   contexts:
 *       default:
 *           url: https://orchard.example:6120
 *           certificate: <base64 of the controller's PEM certificate>   (internal/config/base64.go)
 *           serviceAccountName: ci
 *           serviceAccountToken: ...
 *
 * This reads exactly that shape — nested maps of scalars, as gopkg.in/yaml.v3 writes them — and
 * nothing more general (there is no YAML library among macvm's dependencies). The file is only
 * read, never written.
 */
export interface OrchardContext {
  url?: string;
  /** PEM text (decoded from the file's base64). */
  certificate?: string;
  serviceAccountName?: string;
  serviceAccountToken?: string;
}

export interface OrchardContexts {
  path: string;
  defaultContext?: string;
  contexts: Record<string, OrchardContext>;
}

export function orchardConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  // internal/orchardhome/orchardhome.go: $ORCHARD_HOME replaces the home directory; ".orchard" is inside it.
  const home = env.ORCHARD_HOME?.trim() || homedir();
  return join(home, '.orchard', 'orchard.yml');
}

/** The contexts, or undefined when the file does not exist. */
export async function readOrchardContexts(env: NodeJS.ProcessEnv = process.env): Promise<OrchardContexts | undefined> {
  const path = orchardConfigPath(env);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw unreadable(path, messageOf(error));
  }
  let tree: YamlMap;
  try {
    tree = parseSimpleYaml(text);
  } catch (error) {
    throw unreadable(path, messageOf(error));
  }
  const contexts: Record<string, OrchardContext> = {};
  const raw = tree.contexts;
  if (raw !== undefined && typeof raw !== 'object') throw unreadable(path, '"contexts" is not a map');
  for (const [name, value] of Object.entries(raw ?? {})) {
    if (typeof value !== 'object') throw unreadable(path, `context "${name}" is not a map`);
    const field = (key: string) => (typeof value[key] === 'string' ? (value[key] as string) : undefined);
    const certificate = field('certificate');
    contexts[name] = {
      url: field('url'),
      certificate: certificate ? Buffer.from(certificate, 'base64').toString('utf8') : undefined,
      serviceAccountName: field('serviceAccountName'),
      serviceAccountToken: field('serviceAccountToken'),
    };
  }
  const defaultContext = typeof tree['default-context'] === 'string' ? tree['default-context'] : undefined;
  return { path, defaultContext, contexts };
}

type YamlValue = string | YamlMap;
interface YamlMap {
  [key: string]: YamlValue;
}

/** Block maps of scalars (plain, 'single' or "double" quoted), 2+ space indents, # comments, `{}`. */
export function parseSimpleYaml(text: string): YamlMap {
  const root: YamlMap = {};
  const stack: Array<{ indent: number; map: YamlMap }> = [{ indent: -1, map: root }];
  const lines = text.split(/\r?\n/);
  lines.forEach((line, index) => {
    if (/^\s*(#.*)?$/.test(line) || line === '---' || line === '...') return;
    const match = /^( *)("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s#'"{[\-?][^:]*?):(?:\s+(.*))?$/.exec(line);
    if (!match) throw new Error(`line ${index + 1} is not a "key: value" line this reader understands`);
    const indent = match[1]!.length;
    const key = scalar(match[2]!);
    const rest = (match[3] ?? '').trim();
    while (stack.length > 1 && indent <= stack[stack.length - 1]!.indent) stack.pop();
    const parent = stack[stack.length - 1]!.map;
    if (rest === '' || rest.startsWith('#')) {
      const child: YamlMap = {};
      parent[key] = child;
      stack.push({ indent, map: child });
    } else if (rest === '{}') {
      parent[key] = {};
    } else if (/^[|>[{&*!]/.test(rest)) {
      throw new Error(`line ${index + 1}: block scalars, flow collections, anchors and tags are not supported`);
    } else {
      parent[key] = scalar(rest);
    }
  });
  return root;
}

function scalar(text: string): string {
  if (text.startsWith("'")) {
    if (!text.endsWith("'") || text.length < 2) throw new Error(`unterminated quoted string ${text.slice(0, 20)}`);
    return text.slice(1, -1).replace(/''/g, "'");
  }
  if (text.startsWith('"')) {
    const end = text.lastIndexOf('"');
    if (end <= 0) throw new Error(`unterminated quoted string ${text.slice(0, 20)}`);
    return JSON.parse(text.slice(0, end + 1)) as string;
  }
  // A plain scalar ends before " #".
  return text.replace(/\s+#.*$/, '').trim();
}

function unreadable(path: string, problem: string): MacvmError {
  return new MacvmError('MACVM_CONFIG_INVALID', `Orchard's CLI config ${path} cannot be read: ${problem}.`, {
    hint: 'Fix or recreate it with `orchard context create`, or set orchard.controller and orchard.serviceAccount in macvm.config.ts instead.',
    details: { file: path },
  });
}
