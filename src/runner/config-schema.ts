import { parseSizeBytes } from '../util/size.js';
import type { OrchardSettings } from '../vm/orchard/settings.js';
import type { SshProviderSettings } from '../vm/ssh/settings.js';
import { ACCELERATOR_SETTINGS, type QemuSettings } from '../vm/qemu/settings.js';
import type { ProviderName } from '../vm/types.js';

/**
 * The shape of macvm.config.ts, as users write it. Every key is optional; what is left out
 * gets the default named here (see loadConfig() in ./config.ts for how they resolve).
 *
 * ```ts
 * import { defineConfig } from 'macvm/config';
 * export default defineConfig({
 *   defaults: { image: 'linux-test', memory: '1GiB' },
 *   slots: { qemu: 2 },
 * });
 * ```
 */
export interface MacvmConfig {
  /**
   * Which provider boots VMs when a suite or image does not say. Default: 'vz' on Apple
   * Silicon Macs, 'qemu' everywhere else. Env: MACVM_PROVIDER.
   */
  provider?: ProviderName;
  /**
   * Per-image settings, keyed by the image name suites use (`withMacVM('x', { image: 'sonoma' })`).
   * Names are letters, digits, `.`, `_` and `-` (they become directory names under MACVM_HOME/images).
   */
  images?: Record<string, ImageConfig>;
  /** What a suite gets when its withMacVM() options leave something out. */
  defaults?: DefaultsConfig;
  /**
   * Host-wide limit of VMs running at once, per provider, across every macvm process on the
   * host (the slot broker). Positive integers. Defaults: vz 2 and tart 2 (macOS's licence allows two
   * macOS guests per host, and Virtualization.framework enforces it); qemu
   * max(1, min(CPU threads, floor(RAM in GiB / 2))), i.e. one vCPU thread and 2 GiB of host RAM per
   * guest; ssh 1 (one existing machine, whose state suites would otherwise share); orchard 4.
   * Env: MACVM_SLOTS_<PROVIDER>, e.g. MACVM_SLOTS_QEMU=2.
   */
  slots?: Partial<Record<ProviderName, number>>;
  /** Timeouts in milliseconds. */
  timeouts?: TimeoutsConfig;
  /** Screenshot comparison (`expect(vm).toMatchScreenshot()`). */
  snapshots?: SnapshotsConfig;
  /** Benchmarks (`macvm bench`). */
  bench?: BenchConfig;
  /** Where results and the HTML/JUnit reports go. */
  reports?: ReportsConfig;
  /** The machine the `ssh` provider logs in to (nothing is cloned or booted there). */
  ssh?: SshTargetConfig;
  /**
   * The qemu provider: `accelerator` 'auto' (default: kvm or hvf once a probe has run a guest
   * under it on this host, else tcg), 'kvm', 'hvf' or 'tcg' (env MACVM_ACCEL); `binary`, a
   * qemu-system binary to run instead of qemu-system-<arch> (env MACVM_QEMU_BINARY).
   */
  qemu?: QemuSettings;
  /**
   * The Orchard controller the `orchard` provider runs VMs on (a fleet of Macs):
   * `{ controller: 'orchard.example:6120', serviceAccount: { name, token } }`, or an Orchard CLI
   * `context`. Env (as Orchard's CLI reads them): ORCHARD_URL, ORCHARD_SERVICE_ACCOUNT_NAME,
   * ORCHARD_SERVICE_ACCOUNT_TOKEN. Each image names its Orchard image in `images.<name>.source`
   * and pins its host key in `images.<name>.ssh.hostKey`.
   */
  orchard?: OrchardConfig;
}

export interface ImageConfig {
  /** Provider for suites using this image, overriding the top-level `provider`. */
  provider?: ProviderName;
  /** Where the image comes from, provider-specific: a recipe name, an OCI reference (tart), a path. */
  source?: string;
  /** How to log in to guests made from this image (default: what the image's manifest says). */
  ssh?: SshLoginConfig;
}

export interface SshLoginConfig {
  /** Login user. Required when `ssh` is given. */
  user: string;
  /** A private key file (mode 0600). */
  privateKeyPath?: string;
  /** For images such as Tart's stock ones (admin/admin). Never logged. Prefer a key. */
  password?: string;
  /** The guest's host public key, pinned: "ssh-ed25519 AAAA...". */
  hostKey?: string;
}

export interface DefaultsConfig {
  /** Image name for suites that name none. No default: a suite without an image is an error. */
  image?: string;
  /** vCPUs per VM (positive integer). Default: the provider's (qemu: 1). */
  cpus?: number;
  /** Guest RAM: '8GiB', '512MiB', '4G', or a number of MiB. Default: the provider's (qemu: 1 GiB). */
  memory?: string | number;
  /** Disk size of each clone; grown from the image's if larger. Same units as memory ('80GB' = 80·10⁹ bytes). */
  disk?: string | number;
  /** Attach a display (needed for screenshots on qemu). Default: the provider's. */
  display?: boolean;
}

export interface TimeoutsConfig {
  /**
   * Clone → boot → SSH → ready, for one VM, in ms. Default 120000: QEMU without KVM (TCG) and
   * first boots of macOS images are slow. Env: MACVM_READY_TIMEOUT.
   */
  ready?: number;
  /** Graceful power-down before the VM process is killed, in ms. Default 10000. */
  stop?: number;
  /** How long a suite waits for a free slot before failing with MACVM_SLOT_TIMEOUT, in ms. Default 1800000 (30 min). 0 = do not wait. */
  slot?: number;
}

export type SnapshotUpdateMode = 'missing' | 'changed' | 'all' | 'none';

export interface SnapshotsConfig {
  /**
   * When baselines are written: 'missing' writes only new ones, 'changed' also overwrites those that
   * differ, 'all' rewrites every one, 'none' never writes (a missing baseline fails).
   * Default 'missing', or 'none' when the CI variable is set, so CI never passes on a baseline it just
   * wrote. `macvm test -u` means 'changed'. Env: MACVM_UPDATE_SNAPSHOTS.
   */
  update?: SnapshotUpdateMode;
  /**
   * Where baselines live. Placeholders (see src/snapshot/baseline-path.ts): {specDir}, {specName},
   * {name} (the matcher's name option, or one derived from the test), {env} (the environment, for
   * per-environment baselines), and more. Default '{specDir}/__image_snapshots__/{specName}/{name}.png'.
   */
  pathTemplate?: string;
  /** Per-pixel colour distance (0–1) under which pixels count as equal. Default 0.1. */
  threshold?: number;
  /** Number of differing pixels allowed (non-negative integer). Default 0. */
  maxDiffPixels?: number;
  /** Share of differing pixels allowed, 0–1. Default 0. */
  maxDiffPixelRatio?: number;
  /**
   * Refuse to compare against a baseline whose sidecar records another environment (guest OS
   * build, GPU, display, provider) and fail with MACVM_SNAPSHOT_ENV_MISMATCH. Default false:
   * the pixels decide, and the environment difference is only named (in a passing test's report,
   * or in the MACVM_SNAPSHOT_MISMATCH message). Per snapshot: `strictEnvironment` option.
   */
  strictEnvironment?: boolean;
}

export interface BenchConfig {
  /** History file, appended to by every run, relative to the project root. Default 'reports/bench/history.jsonl'. */
  history?: string;
  /** Fail the run when a benchmark is this many percent slower than its history (e.g. 10). Default: never fail. */
  failOnRegression?: number;
}

export interface ReportsConfig {
  /** Directory for results.json, artifacts and reports, relative to the project root. Default 'reports'. Env: MACVM_REPORTS_DIR. */
  dir?: string;
  /** Write index.html. Default true. */
  html?: boolean;
  /** Write junit.xml. Default true. */
  junit?: boolean;
}

/** The machine the ssh provider logs in to: the provider's own settings type, so the two never drift. */
export type SshTargetConfig = SshProviderSettings;

/** The orchard provider's controller settings: the provider's own type (src/vm/orchard/settings.ts). */
export type OrchardConfig = OrchardSettings;

/* ------------------------------------------------------------------------------------------
 * The validator: a small declarative description of the shape above, walked once, collecting
 * every problem with its key path, so one run of `macvm test` shows all the mistakes.
 * ---------------------------------------------------------------------------------------- */

export type Rule =
  | { kind: 'object'; keys: Record<string, Rule>; required?: string[] }
  | { kind: 'record'; keyPattern?: RegExp; keyDescription?: string; value: Rule }
  | { kind: 'string'; nonEmpty?: boolean }
  | { kind: 'enum'; values: readonly string[] }
  | { kind: 'integer'; min: number; max?: number }
  | { kind: 'number'; min: number; max?: number; exclusiveMin?: boolean }
  | { kind: 'boolean' }
  | { kind: 'size' };

export const PROVIDERS: readonly ProviderName[] = ['qemu', 'vz', 'tart', 'ssh', 'orchard'];
export const UPDATE_MODES: readonly SnapshotUpdateMode[] = ['missing', 'changed', 'all', 'none'];

const nonEmpty: Rule = { kind: 'string', nonEmpty: true };
const optionalString: Rule = { kind: 'string' };
const positiveInteger: Rule = { kind: 'integer', min: 1 };
const provider: Rule = { kind: 'enum', values: PROVIDERS };

const sshLogin: Rule = {
  kind: 'object',
  required: ['user'],
  keys: { user: nonEmpty, privateKeyPath: nonEmpty, password: optionalString, hostKey: nonEmpty },
};

export const CONFIG_RULE: Rule = {
  kind: 'object',
  keys: {
    provider,
    images: {
      kind: 'record',
      keyPattern: /^[A-Za-z0-9][A-Za-z0-9._-]*$/,
      keyDescription: 'an image name of letters, digits, ".", "_" and "-"',
      value: { kind: 'object', keys: { provider, source: nonEmpty, ssh: sshLogin } },
    },
    defaults: {
      kind: 'object',
      keys: { image: nonEmpty, cpus: positiveInteger, memory: { kind: 'size' }, disk: { kind: 'size' }, display: { kind: 'boolean' } },
    },
    slots: { kind: 'object', keys: Object.fromEntries(PROVIDERS.map((p) => [p, positiveInteger])) },
    timeouts: {
      kind: 'object',
      keys: { ready: positiveInteger, stop: positiveInteger, slot: { kind: 'integer', min: 0 } },
    },
    snapshots: {
      kind: 'object',
      keys: {
        update: { kind: 'enum', values: UPDATE_MODES },
        pathTemplate: nonEmpty,
        threshold: { kind: 'number', min: 0, max: 1 },
        maxDiffPixels: { kind: 'integer', min: 0 },
        maxDiffPixelRatio: { kind: 'number', min: 0, max: 1 },
        strictEnvironment: { kind: 'boolean' },
      },
    },
    bench: {
      kind: 'object',
      keys: { history: nonEmpty, failOnRegression: { kind: 'number', min: 0, exclusiveMin: true } },
    },
    reports: { kind: 'object', keys: { dir: nonEmpty, html: { kind: 'boolean' }, junit: { kind: 'boolean' } } },
    qemu: {
      kind: 'object',
      keys: { accelerator: { kind: 'enum', values: ACCELERATOR_SETTINGS }, binary: nonEmpty },
    },
    ssh: {
      kind: 'object',
      required: ['host', 'user', 'hostKey'],
      keys: {
        host: nonEmpty,
        port: { kind: 'integer', min: 1, max: 65535 },
        user: nonEmpty,
        privateKeyPath: nonEmpty,
        password: optionalString,
        hostKey: nonEmpty,
        os: { kind: 'enum', values: ['macos', 'linux'] },
        arch: { kind: 'enum', values: ['aarch64', 'x86_64'] },
      },
    },
    orchard: {
      kind: 'object',
      keys: {
        controller: nonEmpty,
        serviceAccount: { kind: 'object', required: ['name', 'token'], keys: { name: nonEmpty, token: nonEmpty } },
        context: nonEmpty,
        certificate: nonEmpty,
        headless: { kind: 'boolean' },
        labels: { kind: 'record', value: optionalString },
        resources: { kind: 'record', value: { kind: 'integer', min: 0 } },
        imagePullPolicy: { kind: 'enum', values: ['IfNotPresent', 'Always'] },
        insecureAcceptAnyHostKey: { kind: 'boolean' },
      },
    },
  },
};

export interface ConfigProblem {
  /** Dotted key path, e.g. "slots.qemu" or "images.sonoma.ssh.user". */
  path: string;
  message: string;
}

/** Walks `value` against `rule`, returning every problem found (empty when valid). */
export function checkValue(value: unknown, rule: Rule, path: string, problems: ConfigProblem[] = []): ConfigProblem[] {
  const fail = (expected: string, suggestion?: string) =>
    problems.push({ path, message: `${path} must be ${expected}, got ${show(value)}${suggestion ? ` (did you mean "${suggestion}"?)` : ''}` });
  switch (rule.kind) {
    case 'object': {
      if (!isPlainObject(value)) {
        fail('an object');
        break;
      }
      for (const key of rule.required ?? []) {
        if (value[key] === undefined) problems.push({ path: join(path, key), message: `${join(path, key)} is required` });
      }
      for (const [key, child] of Object.entries(value)) {
        const childRule = rule.keys[key];
        if (childRule === undefined) {
          const suggestion = didYouMean(key, Object.keys(rule.keys));
          problems.push({
            path: join(path, key),
            message: `${join(path, key)} is not a known key${suggestion ? ` (did you mean "${join(path, suggestion)}"?)` : ''}; known keys${path ? ` of ${path}` : ''}: ${Object.keys(rule.keys).join(', ')}`,
          });
        } else if (child !== undefined) {
          checkValue(child, childRule, join(path, key), problems);
        }
      }
      break;
    }
    case 'record': {
      if (!isPlainObject(value)) {
        fail('an object');
        break;
      }
      for (const [key, child] of Object.entries(value)) {
        if (rule.keyPattern && !rule.keyPattern.test(key)) {
          problems.push({ path: join(path, key), message: `${path} key "${key}" must be ${rule.keyDescription ?? `like ${rule.keyPattern}`}` });
        } else {
          checkValue(child, rule.value, join(path, key), problems);
        }
      }
      break;
    }
    case 'string':
      if (typeof value !== 'string' || (rule.nonEmpty && value.trim() === '')) fail(rule.nonEmpty ? 'a non-empty string' : 'a string');
      break;
    case 'enum':
      if (typeof value !== 'string' || !rule.values.includes(value)) {
        const suggestion = typeof value === 'string' ? didYouMean(value, rule.values) : undefined;
        fail(`one of ${rule.values.map((v) => `"${v}"`).join(', ')}`, suggestion);
      }
      break;
    case 'integer':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < rule.min || (rule.max !== undefined && value > rule.max)) {
        const name = rule.min === 1 ? 'a positive integer' : rule.min === 0 ? 'a non-negative integer' : `an integer ≥ ${rule.min}`;
        fail(rule.max === undefined ? name : `an integer from ${rule.min} to ${rule.max}`);
      }
      break;
    case 'number': {
      const low = typeof value === 'number' && (rule.exclusiveMin ? value <= rule.min : value < rule.min);
      if (typeof value !== 'number' || !Number.isFinite(value) || low || (rule.max !== undefined && value > rule.max)) {
        fail(rule.max === undefined ? `a number ${rule.exclusiveMin ? '>' : '≥'} ${rule.min}` : `a number from ${rule.min} to ${rule.max}`);
      }
      break;
    }
    case 'boolean':
      if (typeof value !== 'boolean') fail('true or false');
      break;
    case 'size':
      if (!isSize(value)) fail('a size such as "8GiB", "512MiB", "80GB" or a number of MiB');
      break;
  }
  return problems;
}

function isSize(value: unknown): boolean {
  try {
    parseSizeBytes(value as string | number);
    return true;
  } catch {
    return false;
  }
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

/** How a bad value is shown in a message: strings quoted, objects as JSON, cut short. */
export function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (value === undefined || typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  if (typeof value === 'function') return 'a function';
  const json = JSON.stringify(value) ?? String(value);
  return json.length > 60 ? `${json.slice(0, 57)}...` : json;
}

/** The closest candidate within an edit distance that still looks like a typo, if any. */
export function didYouMean(input: string, candidates: readonly string[]): string | undefined {
  const lower = input.toLowerCase();
  let best: { candidate: string; distance: number } | undefined;
  for (const candidate of candidates) {
    const distance = candidate.toLowerCase() === lower ? 0 : editDistance(lower, candidate.toLowerCase());
    if (distance <= Math.max(1, Math.floor(candidate.length / 3)) && (!best || distance < best.distance)) best = { candidate, distance };
  }
  return best?.candidate;
}

/** Edits (insert, delete, substitute, swap two neighbours) that turn `a` into `b`. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = d[i]!;
      row[j] = Math.min(d[i - 1]![j]! + 1, row[j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) row[j] = Math.min(row[j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}
