import { MacvmError } from '../../errors.js';
import type { Deadline } from '../../shared/deadline.js';
import type { ExitInfo, GuestEndpoint, RunningVM } from '../types.js';
import { OrchardApiError, type OrchardClient, type OrchardVm } from './client.js';
import { orchardError } from './orchard-error.js';
import type { OrchardClone } from './clone.js';
import { deleteVm } from './delete-vm.js';
import { listenPortForward, type LocalForward } from './port-forward.js';

/** How this process reaches and watches a running Orchard VM. */
export interface ReachOptions {
  /** How often the VM is checked for failure or deletion; default 5000 ms; 0 turns it off. */
  watchIntervalMs?: number;
  /** The port-forward's `wait` (seconds the controller waits for the guest port); default 10, as the API's. */
  portForwardWaitSeconds?: number;
}

/**
 * A running Orchard VM as THIS process reaches it: one it booted (OrchardClone.boot) or one
 * another process booted, rebuilt from the runtime dir (attach.ts). Nothing of the VM runs on
 * this host, so both are the same thing — a name on a controller — and behave alike:
 *
 *   endpoint    GET /v1/vms/{name} (gone or failed is said plainly, not as a refused forward),
 *               then a port-forward listener of this process on 127.0.0.1:<random>; the guest's
 *               SSH port is 22 (Tart's images, Orchard's exec)
 *   disconnect  closes that listener only, so a CLI can exit; the VM keeps running
 *   stop        DELETE /v1/vms/{name} (404 = already gone): Orchard has no "stopped but kept"
 *               state, so stopping an Orchard VM deletes it. gracefulMs does not apply (the
 *               worker stops the VM). A failed DELETE may be tried again.
 *   exited      settles once stopped, or when the controller says the VM failed or is gone
 *               (the watch, a GET, or a refused port forward)
 */
export class OrchardRunningVM implements RunningVM {
  readonly pid = undefined;
  readonly exited: Promise<ExitInfo>;
  private endExited!: (exit: ExitInfo) => void;
  private forward?: Promise<LocalForward>;
  private readonly announced = new WeakSet<LocalForward>();
  private stopping?: Promise<void>;
  private watch?: NodeJS.Timeout;
  private gone = false;

  constructor(
    readonly clone: OrchardClone,
    /** The VM's name on the controller. */
    private readonly vm: string,
    private readonly api: () => Promise<OrchardClient>,
    private readonly reach: ReachOptions,
  ) {
    this.exited = new Promise((resolve) => (this.endExited = resolve));
    const every = reach.watchIntervalMs ?? 5_000;
    if (every > 0) {
      this.watch = setInterval(() => void this.check(), every);
      this.watch.unref();
    }
  }

  get consoleLogPath(): string {
    return this.clone.consoleLogPath;
  }

  endpoint(deadline: Deadline): Promise<GuestEndpoint> {
    return deadline.run('address', async (signal) => {
      if (this.stopping) throw new MacvmError('MACVM_VM_STOPPED', `VM ${this.clone.id} was stopped.`);
      const api = await this.api();
      // Once per listener: an open one answers for itself (onVmGone) on every connection.
      if (!this.forward) this.checkRunning(await this.status(api, signal), api);
      this.forward ??= listenPortForward({
        client: api,
        vm: this.vm,
        guestPort: 22,
        waitSeconds: this.reach.portForwardWaitSeconds ?? 10,
        log: (line) => void this.clone.log(line),
        onVmGone: (error) => this.vmGone(error.apiMessage ?? `the controller answered ${error.status}`),
      });
      const opening = this.forward;
      opening.catch(() => {
        if (this.forward === opening) this.forward = undefined;
      });
      const local = await opening;
      if (!this.announced.has(local)) {
        this.announced.add(local);
        await this.clone.noteEndpoint(local);
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

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      clearInterval(this.watch);
      await this.disconnect();
      await deleteVm(await this.api(), this.vm, (line) => this.clone.log(line));
      this.endExited({ code: null, signal: null });
    })();
    // A failed DELETE (controller unreachable) may be tried again: the VM may still be running.
    this.stopping.catch(() => (this.stopping = undefined));
    return this.stopping;
  }

  private async status(api: OrchardClient, signal: AbortSignal): Promise<OrchardVm> {
    try {
      return await api.getVm(this.vm, signal);
    } catch (error) {
      if (error instanceof OrchardApiError && error.status === 404) {
        this.vmGone('deleted on the controller');
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
    this.vmGone(`failed: ${vm.status_message ?? 'no status message'}`);
    throw new MacvmError('MACVM_VM_STOPPED', `The Orchard VM ${this.vm} failed${vm.worker ? ` on worker ${vm.worker}` : ''}: ${vm.status_message?.trim() || 'no status message'}`, {
      hint: `See \`orchard logs vm ${this.vm}\`; \`macvm vm rm ${this.clone.id}\` deletes it.`,
      details: { vm: this.vm, controller: api.url, worker: vm.worker, statusMessage: vm.status_message },
    });
  }

  /** The watch: a VM that failed or was deleted behind macvm's back counts as exited (crash watch, reports). */
  private async check(): Promise<void> {
    if (this.stopping || this.gone) return;
    try {
      const vm = await (await this.api()).getVm(this.vm);
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
