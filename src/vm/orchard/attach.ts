import { appendFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { MacvmError } from '../../errors.js';
import type { Deadline } from '../../shared/deadline.js';
import type { VmRecord } from '../runtime-dir.js';
import type { BootOptions, Clone, ExitInfo, GuestEndpoint, Image, RunningVM } from '../types.js';
import { cleanupInfoOf, type CleanupInfo } from './cleanup.js';
import { OrchardApiError, OrchardClient, orchardError, type OrchardVm } from './client.js';
import { listenPortForward, type LocalForward } from './port-forward.js';
import { deleteVm, type OrchardProviderSettings, type OrchardRunningVM } from './provider.js';
import { recordedControllerTarget } from './recorded-controller.js';
import { resolveController } from './settings.js';

/**
 * An Orchard VM that another process started (`macvm vm start --provider orchard`), rebuilt from
 * its runtime dir — what `macvm vm exec`, `vm stop` and `vm rm` work with:
 *
 *   endpoint    GET /v1/vms/{name} (gone or failed is said plainly), then a port-forward listener
 *               of THIS process on 127.0.0.1:<random>; vm.json is not touched (a port that dies
 *               with this process is no endpoint for anyone else)
 *   disconnect  closes that listener only, so the CLI can exit; the VM keeps running
 *   stop        DELETE /v1/vms/{name} (404 = already gone): Orchard has no "stopped but kept"
 *               state, so stopping an Orchard VM deletes it
 *   destroy     stop (or DELETE if never booted), then the runtime dir
 *
 * The controller is the one the record names (its cleanup command's CleanupInfo). Credentials
 * come from `settings` (macvm.config.ts, ORCHARD_* variables, an Orchard CLI context, resolved as
 * the provider does) when they resolve to that same controller; otherwise — no settings, or
 * settings for another controller, whose token must not be sent elsewhere — from what the VM was
 * created with, as the reaper's cleanup command does (recorded-controller.ts).
 */
export interface OrchardAttachOptions {
  /** Where ORCHARD_* variables are read (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Base for a relative certificate path in `settings` (default the current directory). */
  cwd?: string;
  /** The port-forward's `wait` in seconds; default 10. */
  portForwardWaitSeconds?: number;
}

export interface AttachedOrchardVm {
  clone: Clone;
  /** Undefined when the VM was never created on the controller (its boot never started). */
  running: OrchardRunningVM | undefined;
  /** Where the VM lives: what `vm ls` and `vm start` show instead of an SSH port. */
  location: { controller: string; vm: string };
  /** Closes this process's port-forward listener, if one is open. The VM keeps running. */
  disconnect(): Promise<void>;
}

export function attachOrchardVm(dir: string, record: VmRecord, settings: Record<string, unknown> | undefined, options: OrchardAttachOptions = {}): AttachedOrchardVm {
  const info = cleanupInfoOf(record);
  if (record.provider !== 'orchard' || !info) {
    throw new MacvmError('MACVM_BAD_ARGUMENT', `VM ${record.id} is not an Orchard VM with a recorded controller (provider ${record.provider}).`);
  }
  let client: Promise<OrchardClient> | undefined;
  const api = () => {
    client ??= controllerFor(info, settings, options);
    client.catch(() => (client = undefined));
    return client;
  };
  const clone = new AttachedOrchardClone(record.id, { name: record.image, provider: 'orchard' } as Image, dir, info.vm, api);
  // cpus are recorded just before POST /v1/vms: without them the controller never heard of the VM.
  const running = record.cpus === undefined ? undefined : new AttachedOrchardRunningVM(clone, info.vm, api, options.portForwardWaitSeconds ?? 10);
  clone.running = running;
  return {
    clone,
    running,
    location: { controller: info.controller, vm: info.vm },
    disconnect: () => running?.disconnect() ?? Promise.resolve(),
  };
}

/** Where an Orchard VM lives, from its record alone (no request): undefined for other providers. */
export function orchardLocation(record: VmRecord | undefined): { controller: string; vm: string } | undefined {
  if (record?.provider !== 'orchard') return undefined;
  const info = cleanupInfoOf(record);
  return info ? { controller: info.controller, vm: info.vm } : undefined;
}

async function controllerFor(info: CleanupInfo, settings: Record<string, unknown> | undefined, options: OrchardAttachOptions): Promise<OrchardClient> {
  const env = options.env ?? process.env;
  if (settings) {
    const target = await resolveController(settings as OrchardProviderSettings, { env, cwd: options.cwd }).catch(() => undefined);
    if (target?.url === info.controller) return new OrchardClient(target);
  }
  return new OrchardClient(await recordedControllerTarget(info, { env }));
}

function logTo(dir: string): (line: string) => Promise<void> {
  // After destroy() the dir is gone: nothing is recreated, the line is dropped.
  return (line) => appendFile(join(dir, 'console.log'), `${new Date().toISOString()} ${line}\n`, { mode: 0o600 }).catch(() => {});
}

class AttachedOrchardClone implements Clone {
  running?: AttachedOrchardRunningVM;
  private destroying?: Promise<void>;
  readonly log: (line: string) => Promise<void>;

  constructor(
    readonly id: string,
    readonly image: Image,
    readonly runtimeDir: string,
    private readonly vm: string,
    private readonly api: () => Promise<OrchardClient>,
  ) {
    this.log = logTo(runtimeDir);
  }

  boot(_options: BootOptions): Promise<RunningVM> {
    return Promise.reject(new MacvmError('MACVM_BAD_ARGUMENT', 'An attached VM cannot be booted again.'));
  }

  /** DELETEs the VM on the controller (404 = gone), then removes the runtime dir. Idempotent. */
  destroy(): Promise<void> {
    this.destroying ??= (async () => {
      if (this.running) await this.running.stop();
      else await deleteVm(await this.api(), this.vm, this.log);
      // Only once the controller has let go of the VM: a failed DELETE leaves the record for `macvm gc`.
      await rm(this.runtimeDir, { recursive: true, force: true });
    })();
    this.destroying.catch(() => (this.destroying = undefined));
    return this.destroying;
  }
}

class AttachedOrchardRunningVM implements OrchardRunningVM {
  readonly pid = undefined;
  readonly exited: Promise<ExitInfo>;
  private endExited!: (exit: ExitInfo) => void;
  private forward?: Promise<LocalForward>;
  private readonly announced = new WeakSet<LocalForward>();
  private stopping?: Promise<void>;

  constructor(
    readonly clone: AttachedOrchardClone,
    private readonly vm: string,
    private readonly api: () => Promise<OrchardClient>,
    private readonly waitSeconds: number,
  ) {
    this.exited = new Promise((resolve) => (this.endExited = resolve));
  }

  get consoleLogPath(): string {
    return join(this.clone.runtimeDir, 'console.log');
  }

  /** Asks the controller whether the VM still runs, then opens (once) a port-forward listener of this process to guest port 22. */
  endpoint(deadline: Deadline): Promise<GuestEndpoint> {
    return deadline.run('address', async (signal) => {
      if (this.stopping) throw new MacvmError('MACVM_VM_STOPPED', `VM ${this.clone.id} was stopped.`);
      const api = await this.api();
      if (!this.forward) this.checkRunning(await this.status(api, signal), api);
      this.forward ??= listenPortForward({
        client: api,
        vm: this.vm,
        guestPort: 22,
        waitSeconds: this.waitSeconds,
        log: (line) => void this.clone.log(line),
        onVmGone: () => this.endExited({ code: null, signal: null }),
      });
      const opening = this.forward;
      opening.catch(() => (this.forward = undefined));
      const local = await opening;
      if (!this.announced.has(local)) {
        this.announced.add(local);
        await this.clone.log(`port-forward of process ${process.pid} listening on ${local.host}:${local.port}`);
      }
      return { host: local.host, port: local.port };
    });
  }

  async disconnect(): Promise<void> {
    const forward = this.forward;
    this.forward = undefined;
    const local = await forward?.catch(() => undefined);
    if (!local) return;
    await local.close();
    await this.clone.log(`port-forward on ${local.host}:${local.port} closed`);
  }

  /** DELETE /v1/vms/{name} (there is no graceful stop in Orchard; gracefulMs does not apply) and close the listener. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await this.disconnect();
      await deleteVm(await this.api(), this.vm, this.clone.log);
      this.endExited({ code: null, signal: null });
    })();
    // A failed DELETE (controller unreachable) may be tried again.
    this.stopping.catch(() => (this.stopping = undefined));
    return this.stopping;
  }

  private async status(api: OrchardClient, signal: AbortSignal): Promise<OrchardVm> {
    try {
      return await api.getVm(this.vm, signal);
    } catch (error) {
      if (error instanceof OrchardApiError && error.status === 404) {
        this.endExited({ code: null, signal: null });
        throw new MacvmError('MACVM_VM_STOPPED', `The Orchard VM ${this.vm} no longer exists on ${api.url} (deleted by \`macvm vm stop\`, \`orchard delete vm\` or the controller's own clean-up).`, {
          hint: `\`macvm vm rm ${this.clone.id}\` removes what is left of it here.`,
          details: { vm: this.vm, controller: api.url },
        });
      }
      throw orchardError(error, { client: api, action: `get the status of VM "${this.vm}"`, fallback: 'MACVM_PROVIDER_UNAVAILABLE', vm: this.vm });
    }
  }

  private checkRunning(vm: OrchardVm, api: OrchardClient): void {
    if (vm.status !== 'failed') return; // running, or pending (restarting): the forward waits for it
    this.endExited({ code: null, signal: null });
    throw new MacvmError('MACVM_VM_STOPPED', `The Orchard VM ${this.vm} failed${vm.worker ? ` on worker ${vm.worker}` : ''}: ${vm.status_message?.trim() || 'no status message'}`, {
      hint: `See \`orchard logs vm ${this.vm}\`; \`macvm vm rm ${this.clone.id}\` deletes it.`,
      details: { vm: this.vm, controller: api.url, worker: vm.worker, statusMessage: vm.status_message },
    });
  }
}
