import { randomBytes } from 'node:crypto';
import { appendFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { MacvmError, messageOf } from '../../errors.js';
import type { Deadline } from '../../shared/deadline.js';
import { createTaggedRuntimeDir, writeVmRecord, newVmRecord, type VmRecord } from '../runtime-dir.js';
import { normaliseHostKey, TART_DEFAULT_CREDENTIALS } from '../credentials.js';
import type { BootOptions, Clone, CloneOptions, ExitInfo, GuestEndpoint, Image, Provider, RunningVM, SshCredentials } from '../types.js';
import { cleanupCommand } from './cleanup.js';
import { OrchardApiError, OrchardClient, orchardError, type OrchardVm } from './client.js';
import { listenPortForward, type LocalForward } from './port-forward.js';
import { resolveController, type OrchardImageSettings, type OrchardProviderSettings } from './settings.js';

export type { OrchardImageSettings, OrchardProviderSettings, OrchardSettings } from './settings.js';

/**
 * The orchard provider: a fleet of Macs run by a Cirrus Labs Orchard controller
 * (github.com/cirruslabs/orchard). Nothing runs on this host but a TCP listener:
 *
 *   prepare  resolve the controller (settings.ts) and GET /v1/controller/info: reachable, and
 *            the service account is valid — before anything is created
 *   clone    a VM name tagged with the session ("macvm-<session>-<random>") and its runtime dir,
 *            whose cleanup command DELETEs the VM (cleanup.ts; no token on disk). Nothing is
 *            created on the controller yet: Orchard's POST /v1/vms both clones and starts, and
 *            needs the cpu and memory that only boot() knows (changing them later would restart
 *            the VM: api_vms.go updateVMSpec bumps the generation).
 *   boot     POST /v1/vms {name, image, cpu, memory, diskSize, headless, ...}, then
 *            GET /v1/vms/{name} until status "running" ("failed" → its status_message);
 *            each status is logged to console.log and named in the deadline's step
 *   address  a listener on 127.0.0.1:<random>, each connection piped through
 *            GET /v1/vms/{name}/port-forward?port=22 (port-forward.ts)
 *   stop     DELETE /v1/vms/{name} (404 = already gone) and close the listener; idempotent.
 *            Orchard has no "stopped but kept" state: stopping a VM is deleting it.
 *   attach   a VM another process started (`macvm vm start`, detached): attach.ts opens this
 *            process's own listener; a detached VM's vm.json records no ssh port, since the
 *            listener that served it died with the process that started it
 *
 * SSH: Cirrus Labs' images log in as admin/admin (Orchard's VMSpec defaults too, api/openapi.yaml);
 * the guest's host key is pinned per image (`images: { <name>: { ssh: { hostKey } } }`), never learned.
 */
export interface OrchardProviderOptions extends OrchardProviderSettings {
  /** Recorded in vm.json (`macvm vm start`): the reaper leaves the VM alone. */
  detached?: boolean;
  /** Where ORCHARD_* variables are read (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Base for a relative certificate path (default the current directory). */
  cwd?: string;
  /** How often boot() asks the controller for the VM's status; default 1000 ms. */
  pollIntervalMs?: number;
  /** How often a running VM is checked for failure or deletion; default 5000 ms; 0 turns it off. */
  watchIntervalMs?: number;
  /** The port-forward's `wait` (seconds the controller waits for the guest port); default 10, as the API's. */
  portForwardWaitSeconds?: number;
}

export interface OrchardImage extends Image {
  provider: 'orchard';
  /** The image the workers run (VMSpec `image`). */
  source: string;
}

const IMAGE_REF = /^[A-Za-z0-9][A-Za-z0-9._\-/:@]*$/;

/**
 * What a worker reports when it cannot get the image: Tart's "the specified VM "x" does not
 * exist" (Sources/tart/VMStorageHelper.swift) for a local name, or a registry's 404 while
 * pulling the manifest (Sources/tart/OCI/Registry.swift, RegistryError.UnexpectedHTTPStatusCode),
 * wrapped by the worker as `failed to clone the VM: tart command failed: "…"` or `failed to pull
 * the VM: …` (internal/worker/vmmanager/tart/tart.go, base/cmd.go).
 */
const IMAGE_MISSING = /does not exist|pulling manifest.*\b404\b|\b404\b.*pulling manifest|MANIFEST_UNKNOWN|NAME_UNKNOWN|manifest unknown|repository name not known/i;

export function createOrchardProvider(options: OrchardProviderOptions = {}): Provider {
  let controller: Promise<OrchardClient> | undefined;
  const client = () => {
    const { detached: _d, env, cwd, pollIntervalMs: _p, watchIntervalMs: _w, portForwardWaitSeconds: _f, ...settings } = options;
    controller ??= resolveController(settings, { env, cwd }).then((target) => new OrchardClient(target));
    controller.catch(() => (controller = undefined));
    return controller;
  };
  return {
    name: 'orchard',
    async prepare(imageRef: string): Promise<OrchardImage> {
      if (!IMAGE_REF.test(imageRef)) throw new MacvmError('MACVM_BAD_ARGUMENT', `"${imageRef}" is not an image name or an OCI reference.`);
      const perImage = options.images?.[imageRef];
      const source = perImage?.source ?? imageRef;
      if (!IMAGE_REF.test(source)) throw new MacvmError('MACVM_CONFIG_INVALID', `images.${imageRef}.source ("${source}") is not an OCI reference or a Tart VM name.`, { details: { key: `images.${imageRef}.source` } });
      const ssh = orchardCredentials(imageRef, perImage ?? options.images?.['*'] ?? {}, options.insecureAcceptAnyHostKey ?? false);
      const api = await client();
      let info;
      try {
        info = await api.controllerInfo();
      } catch (error) {
        throw orchardError(error, { client: api, action: `use image "${imageRef}"`, fallback: 'MACVM_PROVIDER_UNAVAILABLE' });
      }
      return {
        name: imageRef,
        provider: 'orchard',
        location: `${api.url} ${source}`,
        os: 'macos',
        arch: 'aarch64',
        ssh,
        facts: { controller: api.url, orchardImage: source, ...(info.version ? { controllerVersion: info.version } : {}) },
        source,
      };
    },

    async clone(image: Image, cloneOptions: CloneOptions): Promise<Clone> {
      const orchardImage = image as OrchardImage;
      if (orchardImage.provider !== 'orchard' || !orchardImage.source) throw new MacvmError('MACVM_BAD_ARGUMENT', `Image "${image.name}" was not prepared by the orchard provider.`);
      const api = await client();
      const name = vmName(cloneOptions.session.id);
      // Tagged before the controller knows the VM: from here on the reaper can DELETE it.
      const record = newVmRecord({
        id: name,
        session: cloneOptions.session.id,
        provider: 'orchard',
        image: image.name,
        cleanup: [cleanupCommand({ controller: api.url, vm: name, configFile: options.configFile, context: api.target.context, cwd: options.cwd ?? process.cwd() })],
        detached: options.detached,
      });
      const runtimeDir = await createTaggedRuntimeDir(record);
      return new OrchardClone(name, orchardImage, runtimeDir, record, api, options, cloneOptions.diskGiB);
    },
  };
}

/** Builds the provider from macvm.config.ts `settings` (checked in prepare()). */
export function createOrchardProviderFromConfig(settings: Record<string, unknown> | undefined, options: { detached?: boolean } = {}): Provider {
  return createOrchardProvider({ ...(settings as OrchardProviderSettings | undefined), detached: options.detached });
}

/**
 * "macvm-<session>-<random>": the session makes the VM findable on the controller
 * (`orchard list vms`), the name keeps to Orchard's future rule: [a-z0-9-], at most 63
 * characters, alphanumeric at both ends (internal/simplename/simplename.go ValidateNext).
 */
export function vmName(sessionId: string): string {
  const session = sessionId
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 40)
    .replace(/-$/, '');
  return `macvm-${session ? `${session}-` : ''}${randomBytes(4).toString('hex')}`;
}

function orchardCredentials(imageRef: string, image: OrchardImageSettings, insecure: boolean): SshCredentials {
  const key = `images.${imageRef}.ssh.hostKey`;
  let hostKey: string | undefined;
  if (image.hostKey) {
    try {
      hostKey = normaliseHostKey(image.hostKey);
    } catch (error) {
      throw new MacvmError('MACVM_CONFIG_INVALID', `${key} is not an OpenSSH public key ("ssh-ed25519 AAAA..."): ${messageOf(error).split('\n')[0]}`, { details: { key } });
    }
  } else if (!insecure) {
    throw new MacvmError('MACVM_CONFIG_INVALID', `The orchard image "${imageRef}" has no pinned SSH host key.`, {
      hint:
        `Run a VM of it once (\`orchard create vm … && orchard port-forward vm <name> 2222:22\`), get the key with \`ssh-keyscan -t ed25519 -p 2222 127.0.0.1\`, ` +
        `compare its fingerprint out of band, and set ${key} in macvm.config.ts — or, for throwaway machines only, set orchard.insecureAcceptAnyHostKey: true.`,
      details: { key },
    });
  }
  return {
    user: image.user ?? TART_DEFAULT_CREDENTIALS.user,
    // With a key file, no default password: admin/admin is only the stock images' login.
    password: image.privateKeyPath ? image.password : (image.password ?? TART_DEFAULT_CREDENTIALS.password),
    privateKeyPath: image.privateKeyPath,
    hostKey,
    ...(hostKey ? {} : { insecureAcceptAnyHostKey: true }),
  };
}

class OrchardClone implements Clone {
  private running?: BootedOrchardVM;
  /** Set before POST /v1/vms is sent: from then on, destroy() must DELETE. */
  private created = false;
  private destroying?: Promise<void>;
  readonly consoleLogPath: string;

  constructor(
    readonly id: string,
    readonly image: OrchardImage,
    readonly runtimeDir: string,
    private record: VmRecord,
    private readonly api: OrchardClient,
    private readonly options: OrchardProviderOptions,
    private readonly diskGiB: number | undefined,
  ) {
    this.consoleLogPath = join(runtimeDir, 'console.log');
  }

  log(line: string): Promise<void> {
    return appendFile(this.consoleLogPath, `${new Date().toISOString()} ${line}\n`, { mode: 0o600 }).catch(() => {});
  }

  boot(options: BootOptions): Promise<RunningVM> {
    if (this.destroying) return Promise.reject(new MacvmError('MACVM_VM_STOPPED', `Clone ${this.id} was destroyed.`));
    if (this.running) return Promise.resolve(this.running);
    const { deadline } = options;
    return deadline.run('boot', async (signal) => {
      const spec: OrchardVm = {
        name: this.id,
        image: this.image.source,
        cpu: options.cpus,
        memory: options.memoryMiB, // megabytes (VMSpec `memory`)
        headless: this.options.headless ?? true,
        ...(this.diskGiB !== undefined ? { diskSize: this.diskGiB } : {}),
        ...(this.options.imagePullPolicy ? { imagePullPolicy: this.options.imagePullPolicy } : {}),
        ...(this.options.labels ? { labels: this.options.labels } : {}),
        ...(this.options.resources ? { resources: this.options.resources } : {}),
      };
      this.created = true;
      this.record = { ...this.record, cpus: options.cpus, memoryMiB: options.memoryMiB };
      await writeVmRecord(this.runtimeDir, this.record);
      await this.log(`POST ${this.api.url}/v1/vms name=${this.id} image=${spec.image} cpu=${spec.cpu} memory=${spec.memory}`);
      try {
        await this.api.createVm(spec, signal);
      } catch (error) {
        // A refusal (4xx) means nothing was created; after a timeout or a 5xx the VM may exist.
        if (error instanceof OrchardApiError && error.status >= 400 && error.status < 500) this.created = false;
        if (signal.aborted) throw deadline.error();
        throw orchardError(error, { client: this.api, action: `create VM "${this.id}" (image ${spec.image})`, fallback: 'MACVM_CLONE_FAILED', vm: this.id });
      }
      await this.waitUntilRunning(deadline, signal);
      deadline.enter('boot');
      this.running = new BootedOrchardVM(this, this.api, this.options, (record) => this.updateRecord(record));
      return this.running;
    });
  }

  async updateRecord(change: Partial<VmRecord>): Promise<void> {
    this.record = { ...this.record, ...change };
    await writeVmRecord(this.runtimeDir, this.record);
  }

  /** Polls GET /v1/vms/{name}: pending → running, or failed with the worker's status_message. */
  private async waitUntilRunning(deadline: Deadline, signal: AbortSignal): Promise<void> {
    const interval = this.options.pollIntervalMs ?? 1_000;
    let last = '';
    for (;;) {
      if (signal.aborted || deadline.expired) throw deadline.error();
      let vm: OrchardVm | undefined;
      try {
        vm = await this.api.getVm(this.id, signal);
      } catch (error) {
        if (signal.aborted) throw deadline.error();
        const final = error instanceof OrchardApiError && (error.status === 401 || error.status === 404);
        const mapped = orchardError(error, { client: this.api, action: `get the status of VM "${this.id}"`, fallback: 'MACVM_BOOT_FAILED', vm: this.id });
        if (final) throw mapped;
        // A controller restart or a network blip: keep asking until the deadline.
        await this.log(`status unknown: ${mapped.message.split('\n')[0]}`);
      }
      if (vm) {
        const status = vm.status ?? 'pending';
        const message = vm.status_message ?? '';
        const now = `${status}${vm.worker ? ` on ${vm.worker}` : ''}${message ? `: ${message}` : ''}`;
        if (now !== last) {
          last = now;
          await this.log(`status ${now}`);
          // The deadline's error names the step it hung in: say what the controller said last.
          deadline.enter(status === 'pending' ? `boot (orchard VM pending, ${message ? `"${truncate(message, 200)}"` : 'no status message'})` : 'boot');
        }
        if (status === 'running') return;
        if (status === 'failed') throw this.bootFailure(vm);
      }
      await deadline.sleep(interval);
    }
  }

  private bootFailure(vm: OrchardVm): MacvmError {
    const message = vm.status_message?.trim() || 'no status message';
    const details = { vm: this.id, controller: this.api.url, worker: vm.worker, image: this.image.source, statusMessage: vm.status_message };
    if (IMAGE_MISSING.test(message)) {
      return new MacvmError('MACVM_IMAGE_NOT_FOUND', `Orchard could not get the image "${this.image.source}" for VM ${this.id}${vm.worker ? ` on worker ${vm.worker}` : ''}: ${message}`, {
        hint: `Check images.${this.image.name}.source; a private registry needs \`tart login\` on every worker.`,
        details,
      });
    }
    return new MacvmError('MACVM_BOOT_FAILED', `The Orchard VM ${this.id} failed${vm.worker ? ` on worker ${vm.worker}` : ''}: ${message}`, {
      hint: `See \`orchard logs vm ${this.id}\` while it exists, and the worker's log.`,
      details,
    });
  }

  /** DELETEs the VM on the controller (if it was ever created) and removes the runtime dir. Idempotent. */
  destroy(): Promise<void> {
    this.destroying ??= (async () => {
      if (this.running) await this.running.stop();
      else if (this.created) await deleteVm(this.api, this.id, (line) => this.log(line));
      // Only once the controller has let go of the VM: a failed DELETE leaves the record for `macvm gc`.
      await rm(this.runtimeDir, { recursive: true, force: true });
    })();
    return this.destroying;
  }
}

/** DELETE /v1/vms/{name}, logged; 404 counts as deleted. Throws MACVM_STOP_FAILED otherwise. */
export async function deleteVm(api: OrchardClient, name: string, log: (line: string) => Promise<void>): Promise<void> {
  try {
    const existed = await api.deleteVm(name);
    await log(existed ? `DELETE ${api.url}/v1/vms/${name}: deleted` : `DELETE ${api.url}/v1/vms/${name}: already gone`);
  } catch (error) {
    const mapped = orchardError(error, { client: api, action: `delete VM "${name}"`, fallback: 'MACVM_STOP_FAILED', vm: name });
    await log(`DELETE failed: ${mapped.message.split('\n')[0]}`);
    throw new MacvmError('MACVM_STOP_FAILED', `The Orchard VM ${name} could not be deleted: ${mapped.message}`, {
      hint: `\`macvm gc\` retries (its runtime dir is kept); by hand: \`orchard delete vm ${name}\`.`,
      cause: mapped,
      details: mapped.details,
    });
  }
}

/** An Orchard VM as this process reaches it: through a port-forward listener of its own. */
export interface OrchardRunningVM extends RunningVM {
  /** Closes this process's port-forward listener only; the VM keeps running, and endpoint() opens a new one. */
  disconnect(): Promise<void>;
}

class BootedOrchardVM implements OrchardRunningVM {
  readonly pid = undefined;
  readonly exited: Promise<ExitInfo>;
  private endExited!: (exit: ExitInfo) => void;
  private forward?: Promise<LocalForward>;
  private stopping?: Promise<void>;
  private watch?: NodeJS.Timeout;
  private gone = false;

  constructor(
    readonly clone: OrchardClone,
    private readonly api: OrchardClient,
    private readonly options: OrchardProviderOptions,
    private readonly updateRecord: (change: Partial<VmRecord>) => Promise<void>,
  ) {
    this.exited = new Promise((resolve) => (this.endExited = resolve));
    const every = options.watchIntervalMs ?? 5_000;
    if (every > 0) {
      this.watch = setInterval(() => void this.check(), every);
      this.watch.unref();
    }
  }

  get consoleLogPath(): string {
    return this.clone.consoleLogPath;
  }

  /** The port-forward listener; the guest's SSH port is 22 (Tart's images, Orchard's exec). */
  endpoint(deadline: Deadline): Promise<GuestEndpoint> {
    return deadline.run('address', async () => {
      if (this.stopping) throw new MacvmError('MACVM_VM_STOPPED', `VM ${this.clone.id} was stopped.`);
      this.forward ??= listenPortForward({
        client: this.api,
        vm: this.clone.id,
        guestPort: 22,
        waitSeconds: this.options.portForwardWaitSeconds ?? 10,
        log: (line) => void this.clone.log(line),
        onVmGone: (error) => this.vmGone(error.apiMessage ?? `the controller answered ${error.status}`),
      });
      this.forward.catch(() => (this.forward = undefined));
      const local = await this.forward;
      // A detached VM (`macvm vm start`) outlives this process, its listener does not: a port
      // in vm.json would be dead once the CLI exits. Other processes open their own (attach.ts).
      if (!this.options.detached) await this.updateRecord({ ssh: { host: local.host, port: local.port } });
      return { host: local.host, port: local.port };
    });
  }

  async disconnect(): Promise<void> {
    const forward = this.forward;
    this.forward = undefined;
    await (await forward?.catch(() => undefined))?.close();
  }

  /** DELETE /v1/vms/{name} and close the listener. Idempotent; gracefulMs does not apply (the worker stops the VM). */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      clearInterval(this.watch);
      try {
        await (await this.forward?.catch(() => undefined))?.close();
        await deleteVm(this.api, this.clone.id, (line) => this.clone.log(line));
      } finally {
        this.endExited({ code: null, signal: null });
      }
    })();
    return this.stopping;
  }

  /** A VM that failed or was deleted behind macvm's back counts as exited (crash watch, reports). */
  private async check(): Promise<void> {
    if (this.stopping || this.gone) return;
    try {
      const vm = await this.api.getVm(this.clone.id);
      if (vm.status === 'failed') this.vmGone(`failed: ${vm.status_message ?? 'no status message'}`);
    } catch (error) {
      if (error instanceof OrchardApiError && error.status === 404) this.vmGone('deleted on the controller');
    }
  }

  private vmGone(why: string): void {
    if (this.gone || this.stopping) return;
    this.gone = true;
    clearInterval(this.watch);
    // Logged before `exited` settles: whoever reacts to the exit reads the console for why.
    void this.clone
      .log(`VM gone: ${why}`)
      .catch(() => {})
      .finally(() => this.endExited({ code: null, signal: null }));
  }
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
