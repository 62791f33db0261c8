import type { Rule } from '../util/validate.js';
import type { OrchardSettings } from '../vm/orchard/settings.js';
import type { QemuSettings } from '../vm/qemu/settings.js';
import { PROVIDER_NAMES, providerDefinitions } from '../vm/registry.js';
import type { SshProviderSettings } from '../vm/ssh/settings.js';
import { NETWORK_MODES, type NetworkMode, type ProviderName } from '../vm/types.js';

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
  /** The vz provider: `insecureAcceptAnyHostKey: true` accepts any guest host key (throwaway machines only). */
  vz?: HostKeyTrustConfig;
  /** The tart provider: `insecureAcceptAnyHostKey: true` accepts any guest host key (throwaway machines only). */
  tart?: HostKeyTrustConfig;
}

/** For providers whose guests pin their host keys per image (`images.<name>.ssh.hostKey`). */
export interface HostKeyTrustConfig {
  /** Accept whatever host key a guest presents when its image pins none. Never for shared machines. */
  insecureAcceptAnyHostKey?: boolean;
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
  /** vCPUs per VM (positive integer). Default 2 (src/vm/defaults.ts). */
  cpus?: number;
  /** Guest RAM: '8GiB', '512MiB', '4G', or a number of MiB. Default 1 GiB (src/vm/defaults.ts). */
  memory?: string | number;
  /** Disk size of each clone; grown from the image's if larger. Same units as memory ('80GB' = 80·10⁹ bytes). */
  disk?: string | number;
  /** Attach a display (needed for screenshots on qemu). Default: the provider's. */
  display?: boolean;
  /**
   * The guests' network. 'none' (qemu's default): a guest reaches nothing but what a suite
   * exposes (vm.exposeHostPort) — no host services, no internet. 'nat': outbound NAT through
   * the host; under qemu that includes every service on the host's loopback (10.0.2.2).
   * Only qemu can choose; other providers refuse it.
   */
  network?: NetworkMode;
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
  /** History file, appended to by every run, relative to the project root. Default: `bench/history.jsonl` in the reports dir (`reports.dir`, or MACVM_REPORTS_DIR). */
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

export const PROVIDERS: readonly ProviderName[] = PROVIDER_NAMES;
export const UPDATE_MODES: readonly SnapshotUpdateMode[] = ['missing', 'changed', 'all', 'none'];

const nonEmpty: Rule = { kind: 'string', nonEmpty: true };
const positiveInteger: Rule = { kind: 'integer', min: 1 };
const provider: Rule = { kind: 'enum', values: PROVIDERS };

const sshLogin: Rule = {
  kind: 'object',
  required: ['user'],
  keys: { user: nonEmpty, privateKeyPath: nonEmpty, password: { kind: 'string', secret: true }, hostKey: nonEmpty },
};

/** Each provider's own section (`ssh`, `qemu`, `orchard`, …), with the rules its definition gives. */
const PROVIDER_SECTIONS: Record<string, Rule> = Object.fromEntries(providerDefinitions().flatMap((d) => (d.sectionRule ? [[d.name, d.sectionRule] as const] : [])));

/**
 * A local image name, or a registry reference: its first part a registry host (with a "." or a
 * port, or localhost), then a lower-case repository path, an optional tag and digest. So
 * "bad/name" is neither, as it is not to `isRegistryReference` either.
 */
const IMAGE_KEY = /^(?:[A-Za-z0-9][A-Za-z0-9._-]*|(?:localhost|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+|[A-Za-z0-9.-]+:[0-9]+)(?::[0-9]+)?(?:\/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)+(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?)$/;

export const CONFIG_RULE: Rule = {
  kind: 'object',
  keys: {
    provider,
    images: {
      kind: 'record',
      // A local image name, or a registry reference (`ghcr.io/cirruslabs/macos-sonoma-base:latest`).
      keyPattern: IMAGE_KEY,
      keyDescription: 'an image name of letters, digits, ".", "_" and "-", or a registry reference (host/repository:tag)',
      value: { kind: 'object', keys: { provider, source: nonEmpty, ssh: sshLogin } },
    },
    defaults: {
      kind: 'object',
      keys: { image: nonEmpty, cpus: positiveInteger, memory: { kind: 'size' }, disk: { kind: 'size' }, display: { kind: 'boolean' }, network: { kind: 'enum', values: NETWORK_MODES } },
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
      keys: { history: nonEmpty, failOnRegression: { kind: 'number', min: 0 } },
    },
    reports: { kind: 'object', keys: { dir: nonEmpty, html: { kind: 'boolean' }, junit: { kind: 'boolean' } } },
    ...PROVIDER_SECTIONS,
  },
};

export { checkValue, didYouMean, isPlainObject, show, type ConfigProblem, type Rule } from '../util/validate.js';
