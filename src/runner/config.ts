import { access } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { MacvmError, messageOf } from '../errors.js';
import { parseSize } from '../util/size.js';
import { DEFAULTS } from '../vm/defaults.js';
import { macvmHome } from '../vm/home.js';
import { currentHost, type HostFacts } from '../vm/host-facts.js';
import type { ProviderConfigView } from '../vm/provider-definition.js';
import { defaultProviderName, defaultSlots, providerDefinitions } from '../vm/registry.js';
import type { NetworkMode, ProviderName } from '../vm/types.js';
import {
  CONFIG_RULE,
  PROVIDERS,
  UPDATE_MODES,
  checkValue,
  didYouMean,
  show,
  type ConfigProblem,
  type ImageConfig,
  type MacvmConfig,
  type SnapshotUpdateMode,
} from './config-schema.js';

export type * from './config-schema.js';
import { DEFAULT_PATH_TEMPLATE } from '../snapshot/baseline-path.js';
import { configOfModule, importConfigModule } from '../util/config-module.js';

/** For typing only: `export default defineConfig({ ... })` gets completion and type checks. */
export function defineConfig(config: MacvmConfig): MacvmConfig {
  return config;
}

/** Looked for in this order in the project root; the first that exists wins. */
export const CONFIG_FILE_NAMES = ['macvm.config.ts', 'macvm.config.mts', 'macvm.config.js', 'macvm.config.mjs'] as const;

/** The config with every default filled in, env overrides applied, sizes in MiB and paths absolute. */
export interface ResolvedConfig {
  /** Absolute path of the config file read, or undefined when there is none (all defaults). */
  configFile?: string;
  /** The project root: where the config was looked for and relative paths resolve from. */
  root: string;
  /** MACVM_HOME (images and runtime state). */
  home: string;
  provider: ProviderName;
  images: Record<string, ImageConfig>;
  /** Sizes are whole MiB here. */
  defaults: { image?: string; cpus?: number; memory?: number; disk?: number; display?: boolean; network?: NetworkMode };
  slots: Record<ProviderName, number>;
  timeouts: { ready: number; stop: number; slot: number };
  snapshots: { update: SnapshotUpdateMode; pathTemplate: string; threshold: number; maxDiffPixels?: number; maxDiffPixelRatio?: number; strictEnvironment: boolean };
  /** `history` is absolute. */
  bench: { history: string; failOnRegression?: number };
  /** `dir` is absolute. */
  reports: { dir: string; html: boolean; junit: boolean };
  /**
   * Each provider's own section (`ssh`, `qemu`, `orchard`, …) as written: environment variables
   * (MACVM_ACCEL, ORCHARD_URL, …) are applied by the provider, as their own tools apply them.
   */
  providers: Partial<Record<ProviderName, Record<string, unknown>>>;
}

export type { HostFacts };
export { currentHost, defaultSlots };

export interface LoadConfigOptions {
  /** Project root; default process.cwd(). */
  cwd?: string;
  /** Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** A config file to use instead of looking for macvm.config.* in cwd (must exist). */
  configFile?: string;
  host?: HostFacts;
}

/** vz on Apple Silicon Macs, qemu elsewhere. */
export function defaultProvider(host: Pick<HostFacts, 'platform' | 'arch'> = currentHost()): ProviderName {
  return defaultProviderName(host);
}

/** What one provider reads of a resolved config (its section, the per-image entries, the file). */
export function providerConfigView(config: Pick<ResolvedConfig, 'providers' | 'images' | 'configFile'>, provider: ProviderName): ProviderConfigView {
  return { section: config.providers[provider], images: config.images as ProviderConfigView['images'], configFile: config.configFile };
}

/**
 * Finds macvm.config.{ts,mts,js,mjs} in `cwd` (or uses `configFile`), imports it (TypeScript
 * through tsx, so it works from the CLI and from inside vitest alike), validates it, applies the
 * MACVM_* environment overrides and fills in defaults. No config file means all defaults.
 * Every problem found is reported at once in one MACVM_CONFIG_INVALID error.
 */
export async function loadConfig(options: LoadConfigOptions = {}): Promise<ResolvedConfig> {
  const root = resolve(options.cwd ?? process.cwd());
  const file = options.configFile ? resolve(root, options.configFile) : await findConfigFile(root);
  if (options.configFile && file) await mustExist(file);
  const raw = file ? await importConfig(file) : {};
  return resolveConfig(raw, { root, env: options.env ?? process.env, configFile: file, host: options.host });
}

export async function findConfigFile(dir: string): Promise<string | undefined> {
  for (const name of CONFIG_FILE_NAMES) {
    const path = join(dir, name);
    try {
      await access(path);
      return path;
    } catch {
      // try the next name
    }
  }
  return undefined;
}

async function mustExist(file: string): Promise<void> {
  try {
    await access(file);
  } catch {
    throw new MacvmError('MACVM_CONFIG_INVALID', `The config file ${file} does not exist.`, { details: { file } });
  }
}

/** The default export of a config module: an object, or a (possibly async) function returning one. */
async function importConfig(file: string): Promise<unknown> {
  let module: Record<string, unknown>;
  try {
    module = await importConfigModule(file);
  } catch (error) {
    // tsx's require stack names its own loader, not anything to fix.
    const message = messageOf(error).replace(/\n*Require stack:[\s\S]*$/, '');
    const missingMacvm = /Cannot find (module|package) '?macvm(\/config)?'?/.test(message);
    throw new MacvmError('MACVM_CONFIG_INVALID', `Could not load ${file}: ${message}`, {
      hint: missingMacvm
        ? "Install macvm in this project (`npm i -D macvm`), or drop the import: defineConfig only adds types, `export default { ... }` works as well."
        : 'Fix that error; the config must be a module whose default export is defineConfig({ ... }) or a plain object.',
      cause: error,
      details: { file },
    });
  }
  const config = await configOfModule(module);
  if (config === undefined) {
    throw new MacvmError('MACVM_CONFIG_INVALID', `${file} has no default export.`, {
      hint: "Write `export default defineConfig({ ... })` (import { defineConfig } from 'macvm/config').",
      details: { file },
    });
  }
  return config;
}

interface ResolveOptions {
  root: string;
  env: NodeJS.ProcessEnv;
  configFile?: string;
  host?: HostFacts;
}

/** Validates an already-imported config object and resolves it (pure apart from reading `host`). */
export function resolveConfig(raw: unknown, options: ResolveOptions): ResolvedConfig {
  const source = options.configFile ?? 'the macvm config';
  const problems = checkValue(raw, CONFIG_RULE, '');
  throwIfProblems(problems, source, options.configFile);
  const config = raw as MacvmConfig;
  const overrides = readEnvOverrides(options.env);
  throwIfProblems(overrides.problems, 'the environment', options.configFile);

  const host = options.host ?? currentHost();
  const root = options.root;
  const path = (p: string) => (isAbsolute(p) ? p : resolve(root, p));
  const defaults = config.defaults ?? {};
  const ci = Boolean(options.env.CI?.trim()) && options.env.CI !== 'false' && options.env.CI !== '0';
  const reportsDir = path(overrides.reportsDir ?? config.reports?.dir ?? 'reports');

  return {
    configFile: options.configFile,
    root,
    home: macvmHome(options.env),
    provider: overrides.provider ?? config.provider ?? defaultProvider(host),
    images: config.images ?? {},
    defaults: {
      image: defaults.image,
      cpus: defaults.cpus,
      memory: defaults.memory === undefined ? undefined : parseSize(defaults.memory, 'defaults.memory'),
      disk: defaults.disk === undefined ? undefined : parseSize(defaults.disk, 'defaults.disk'),
      display: defaults.display,
      network: defaults.network,
    },
    slots: { ...defaultSlots(host), ...config.slots, ...overrides.slots },
    timeouts: {
      ready: overrides.readyTimeout ?? config.timeouts?.ready ?? DEFAULTS.readyTimeoutMs,
      stop: config.timeouts?.stop ?? DEFAULTS.stopGracefulMs,
      slot: config.timeouts?.slot ?? DEFAULTS.slotTimeoutMs,
    },
    snapshots: {
      update: overrides.updateSnapshots ?? config.snapshots?.update ?? (ci ? 'none' : 'missing'),
      pathTemplate: config.snapshots?.pathTemplate ?? DEFAULT_PATH_TEMPLATE,
      threshold: config.snapshots?.threshold ?? DEFAULTS.snapshotThreshold,
      // Unset stays unset: a default of 0 would beat a configured ratio ("the stricter wins").
      maxDiffPixels: config.snapshots?.maxDiffPixels,
      maxDiffPixelRatio: config.snapshots?.maxDiffPixelRatio,
      strictEnvironment: config.snapshots?.strictEnvironment ?? false,
    },
    // The history goes with the reports unless the config puts it elsewhere (say, a tracked file
    // for `macvm bench --compare <git-ref>`).
    bench: { history: config.bench?.history ? path(config.bench.history) : join(reportsDir, 'bench', 'history.jsonl'), failOnRegression: config.bench?.failOnRegression },
    reports: {
      dir: reportsDir,
      html: config.reports?.html ?? true,
      junit: config.reports?.junit ?? true,
    },
    providers: Object.fromEntries(providerDefinitions().flatMap((d) => (config[d.name] ? [[d.name, config[d.name] as Record<string, unknown>]] : []))),
  };
}

interface EnvOverrides {
  problems: ConfigProblem[];
  provider?: ProviderName;
  slots: Partial<Record<ProviderName, number>>;
  readyTimeout?: number;
  reportsDir?: string;
  updateSnapshots?: SnapshotUpdateMode;
}

const SLOT_VARIABLE = 'MACVM_SLOTS_';

/**
 * MACVM_PROVIDER, MACVM_SLOTS_<PROVIDER>, MACVM_READY_TIMEOUT (ms), MACVM_REPORTS_DIR and
 * MACVM_UPDATE_SNAPSHOTS override the config (MACVM_HOME is read by src/vm/home.ts). An empty
 * variable counts as unset, since CI systems often define them empty.
 */
export function readEnvOverrides(env: NodeJS.ProcessEnv): EnvOverrides {
  const result: EnvOverrides = { problems: [], slots: {} };
  const get = (name: string) => {
    const value = env[name]?.trim();
    return value ? value : undefined;
  };
  const problem = (name: string, expected: string, value: string, suggestion?: string) =>
    result.problems.push({ path: name, message: `${name} must be ${expected}, got ${show(value)}${suggestion ? ` (did you mean "${suggestion}"?)` : ''}` });

  const provider = get('MACVM_PROVIDER');
  if (provider !== undefined) {
    if ((PROVIDERS as readonly string[]).includes(provider)) result.provider = provider as ProviderName;
    else problem('MACVM_PROVIDER', `one of ${PROVIDERS.join(', ')}`, provider, didYouMean(provider, PROVIDERS));
  }

  for (const name of Object.keys(env).filter((key) => key.startsWith(SLOT_VARIABLE)).sort()) {
    const value = get(name);
    if (value === undefined) continue;
    const providerName = name.slice(SLOT_VARIABLE.length).toLowerCase();
    if (!(PROVIDERS as readonly string[]).includes(providerName)) {
      const suggestion = didYouMean(providerName, PROVIDERS);
      result.problems.push({
        path: name,
        message: `${name} names no provider${suggestion ? ` (did you mean ${SLOT_VARIABLE}${suggestion.toUpperCase()}?)` : ''}; use ${PROVIDERS.map((p) => SLOT_VARIABLE + p.toUpperCase()).join(', ')}`,
      });
      continue;
    }
    const slots = integerOf(value);
    if (slots === undefined || slots < 1) problem(name, 'a positive integer', value);
    else result.slots[providerName as ProviderName] = slots;
  }

  const ready = get('MACVM_READY_TIMEOUT');
  if (ready !== undefined) {
    const ms = integerOf(ready);
    if (ms === undefined || ms < 1) problem('MACVM_READY_TIMEOUT', 'a positive integer of milliseconds', ready);
    else result.readyTimeout = ms;
  }

  result.reportsDir = get('MACVM_REPORTS_DIR');

  const update = get('MACVM_UPDATE_SNAPSHOTS');
  if (update !== undefined) {
    if ((UPDATE_MODES as readonly string[]).includes(update)) result.updateSnapshots = update as SnapshotUpdateMode;
    else problem('MACVM_UPDATE_SNAPSHOTS', `one of ${UPDATE_MODES.join(', ')}`, update, didYouMean(update, UPDATE_MODES));
  }
  return result;
}

function integerOf(text: string): number | undefined {
  return /^\d+$/.test(text) ? Number(text) : undefined;
}

function throwIfProblems(problems: ConfigProblem[], source: string, configFile: string | undefined): void {
  if (problems.length === 0) return;
  const message =
    problems.length === 1
      ? `Invalid config (${source}): ${problems[0]!.message}.`
      : `Invalid config (${source}), ${problems.length} problems:\n${problems.map((p) => `  - ${p.message}`).join('\n')}`;
  throw new MacvmError('MACVM_CONFIG_INVALID', message, {
    hint: 'Every key is documented in the README (Configuration) and in the MacvmConfig type; defineConfig() gives editor completion.',
    details: { file: configFile, problems },
  });
}
