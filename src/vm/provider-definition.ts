/**
 * What a provider is, beyond the lifecycle it implements (Provider/Clone/RunningVM in ./types.ts):
 * the settings it reads from macvm.config.ts and their validation rules, its defaults, how it
 * reattaches to a VM another process started, what `macvm doctor` checks for it, how `vm ls`
 * describes its VMs and how `vm exec` reaches them, and which image directories are its own.
 *
 * One object per provider (src/vm/<name>/definition.ts), listed once in ./registry.ts. The runner,
 * CLI, doctor and fixtures ask the registry; none of them branches on a provider's name.
 *
 * A definition must stay cheap to import: macvm.config.ts files import the config schema, which
 * reads the rules from here. Anything heavy (ssh2, execa, the native addon) is imported inside
 * the functions that need it.
 */
import type { ImageKind } from '../oci/image-layout.js';
import type { PushPlan } from '../oci/push.js';
import type { Rule } from '../util/validate.js';
import type { AttachedParts } from './attached-vm.js';
import type { DoctorCheck, DoctorContext } from './doctor-check.js';
import type { HostFacts } from './host-facts.js';
import type { LayerFiles } from './image-layer.js';
import type { ImageListing } from './image-listing.js';
import type { VmRecord } from './runtime-dir.js';
import type { GuestEndpoint, Provider, ProviderName, RunningVM } from './types.js';

/** What a provider is handed from macvm.config.ts (or the run context that carries it to workers). */
export interface ProviderConfigView {
  /** The config's section named after the provider (`ssh: {…}`, `qemu: {…}`), as written. */
  section?: Record<string, unknown>;
  /** The config's `images`: per-image provider, source and login. */
  images: Record<string, { provider?: string; source?: string; ssh?: Record<string, unknown> }>;
  /** The config file these came from: recorded where a reaper must read credentials again (orchard). */
  configFile?: string;
}

export interface ProviderDefaults {
  /** VMs at once on one host, across every macvm process (the slot broker's limit). */
  slots(host: HostFacts): number;
  /** How long `macvm vm exec` waits for an SSH connection to the guest. */
  connectTimeoutMs: number;
}

/** How `macvm vm ls` shows one of a provider's VMs, from its record alone (no network). */
export interface VmListing {
  state: 'created' | 'running' | 'stopped' | 'remote';
  /** Where its SSH answers as the table shows it: "127.0.0.1:2222", "via https://orchard:6120". */
  reach: string;
  /** Where the VM lives, in words, when that is not here (orchard: "Orchard VM <name> on <controller>"). */
  lives?: string;
  /** Extra fields for `vm ls --json` (orchard: { controller, vm }). */
  extra?: Record<string, unknown>;
}

export interface ProviderDefinition {
  readonly name: ProviderName;
  /** One line for docs and `--help`: where the provider runs. */
  readonly summary: string;
  /** Rules for the config section named after the provider; absent: the provider has none. */
  readonly sectionRule?: Rule;
  readonly defaults: ProviderDefaults;
  /** True when this host could run the provider at all (vz: macOS on Apple Silicon). */
  runsOn(host: Pick<HostFacts, 'platform' | 'arch'>): boolean;
  /** True when this provider is the default on such a host (exactly one provider says so for any host). */
  isDefaultOn?(host: Pick<HostFacts, 'platform' | 'arch'>): boolean;
  /** The settings the provider is created with, from the config. */
  settings(view: ProviderConfigView): Record<string, unknown> | undefined;
  create(settings: Record<string, unknown> | undefined, options: { detached?: boolean }): Promise<Provider>;
  /**
   * A VM another process started, rebuilt from its runtime dir and record. Undefined parts fall
   * back to the generic ones (a clone whose destroy runs the record's cleanup commands).
   */
  attach(dir: string, record: VmRecord, settings: Record<string, unknown> | undefined): Promise<AttachedParts>;
  /** How `vm ls` shows a VM of this provider. */
  describe(record: VmRecord): Promise<VmListing>;
  /**
   * Where THIS process reaches an attached VM's SSH: the recorded endpoint for local VMs, a fresh
   * port forward for a remote one (orchard).
   */
  endpoint(id: string, record: VmRecord, running: RunningVM | undefined): Promise<GuestEndpoint>;
  /** What `vm stop` says once the VM is stopped (orchard cannot stop a VM and keep it). */
  stoppedMessage?(id: string, record: VmRecord, hadRunningVm: boolean): string | undefined;
  /** `macvm doctor`'s checks for this provider. */
  doctor(context: DoctorContext): Promise<DoctorCheck[]>;
  /** What `doctor --fix` can do beyond apt packages (qemu: build the test guests). */
  repair?(context: DoctorContext): Promise<void>;
  /** Images the provider builds itself (`macvm image build <recipe>`), by recipe name. */
  readonly imageRecipes?: Readonly<Record<string, ImageRecipe>>;
  /**
   * An image like `image` with `files` added, made once and cached as a layer of its own (qemu: a
   * derived qcow2 image); resolves to the image name to clone. Absent where the provider cannot.
   */
  imageWithFiles?(image: string, files: LayerFiles): Promise<string>;
  /** An image directory under MACVM_HOME/images that is this provider's, described; undefined if not. */
  describeImage?(name: string, dir: string): Promise<ImageListing | undefined>;
  /** How this provider's images travel through OCI registries; absent where they do not. */
  readonly registryImages?: RegistryImageSupport;
}

/**
 * A provider's side of `macvm image push/pull` and of `host/repo:tag` images in specs: which
 * kind of OCI image it boots, how one of its local images becomes layers, and what a pulled
 * image needs before it is installed in the cache.
 */
export interface RegistryImageSupport {
  /** 'tart' (a Tart bundle: vz, tart) or 'macvm-qemu' (macvm's own media types). */
  readonly kind: ImageKind;
  /** The layers to push for a local image directory of this provider. */
  pushPlan(imageDir: string): Promise<PushPlan>;
  /** Runs on a complete pulled image before it is installed (qemu: a fresh client key). */
  prepareInstall?(stagingDir: string): Promise<void>;
}

/** A guest image a provider can build from public packages (qemu: linux-test from Debian's). */
export interface ImageRecipe {
  /** For `image build --help`. */
  summary: string;
  /** Builds into imageDir (cached: an intact image is kept unless force). Resolves to its manifest. */
  build(options: { imageDir: string; force?: boolean; onProgress?: (event: BuildProgressEvent) => void }): Promise<unknown>;
}

/** One step of a long build, as the CLI's progress line shows it. */
export interface BuildProgressEvent {
  step: string;
  detail?: string;
  /** 0–1 where the step knows how far it is. */
  fraction?: number;
}
