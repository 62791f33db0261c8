import { appendFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { MacvmError } from '../../errors.js';
import { writeVmRecord, type VmRecord } from '../runtime-dir.js';
import type { BootOptions, Clone, Image } from '../types.js';
import { waitUntilRunning } from './boot-status.js';
import { OrchardApiError, type OrchardClient } from './client.js';
import { orchardError } from './orchard-error.js';
import { deleteVm } from './delete-vm.js';
import type { LocalForward } from './port-forward.js';
import { OrchardRunningVM, type ReachOptions } from './running-vm.js';
import { vmSpec, type OrchardVmSettings } from './vm-spec.js';

/**
 * What only the process that creates the VM has: the runtime dir's record, which it alone keeps
 * up to date, and what POST /v1/vms needs. A clone rebuilt from its record by another process
 * (`macvm vm exec/stop/rm`, attach.ts) has none of it: it neither boots nor writes vm.json.
 */
export interface CloneCreation {
  record: VmRecord;
  /** The image the workers run (VMSpec `image`). */
  source: string;
  settings: OrchardVmSettings;
  diskGiB: number | undefined;
  /** How often boot() asks the controller for the VM's status; default 1000 ms. */
  pollIntervalMs?: number;
}

export interface OrchardCloneParts {
  /** The runtime dir's id: for a VM this process names, also its name on the controller. */
  id: string;
  /** The VM's name on the controller. */
  vm: string;
  image: Image;
  runtimeDir: string;
  /** The controller's client, resolved on first use (lazy-client.ts). */
  api: () => Promise<OrchardClient>;
  reach: ReachOptions;
  /** Present when this process creates the VM (provider.ts); absent when rebuilt from a record. */
  creation?: CloneCreation;
}

/**
 * An Orchard VM's clone, whichever process holds it. Nothing of it is on this host but the
 * runtime dir: the VM is a name on the controller, so the clone the provider made and the one
 * rebuilt from the runtime dir are the same object, differing only in `creation`.
 *
 *   boot     (creating process only) records cpus and memory, POST /v1/vms, then waits for
 *            "running" (boot-status.ts)
 *   destroy  stops the running VM (or DELETEs it if it may exist), then removes the runtime
 *            dir — only once the controller has let go of the VM, so a failed DELETE leaves the
 *            record for `macvm gc`
 */
export class OrchardClone implements Clone {
  readonly bootsAgainRefusal = 'a VM booted again on an Orchard controller is a new clone of the image, without what this one wrote';
  readonly id: string;
  readonly image: Image;
  readonly runtimeDir: string;
  readonly consoleLogPath: string;
  private readonly vm: string;
  private readonly api: () => Promise<OrchardClient>;
  private readonly reach: ReachOptions;
  private readonly creation?: CloneCreation;
  private running?: OrchardRunningVM;
  /**
   * Whether the controller may know the VM, so destroy() must DELETE. The creating process sets
   * it just before POST /v1/vms; a rebuilt clone cannot rule it out, and a 404 is cheap.
   */
  private created: boolean;
  /** Set by the first destroy(), even one that fails: a clone on its way out is not booted (POSTed) again. */
  private destroyRequested = false;
  private destroying?: Promise<void>;

  constructor(parts: OrchardCloneParts) {
    ({ id: this.id, image: this.image, runtimeDir: this.runtimeDir, vm: this.vm, api: this.api, reach: this.reach, creation: this.creation } = parts);
    this.consoleLogPath = join(this.runtimeDir, 'console.log');
    this.created = !this.creation;
  }

  /** Appends a line to console.log. After destroy() the dir is gone: nothing is recreated, the line is dropped. */
  log(line: string): Promise<void> {
    return appendFile(this.consoleLogPath, `${new Date().toISOString()} ${line}\n`, { mode: 0o600 }).catch(() => {});
  }

  /** The running VM of a clone that is already on the controller: after boot(), or as attach.ts finds it. */
  adopt(): OrchardRunningVM {
    this.running ??= new OrchardRunningVM(this, this.vm, this.api, this.reach);
    return this.running;
  }

  boot(options: BootOptions): Promise<OrchardRunningVM> {
    if (this.destroyRequested) return Promise.reject(new MacvmError('MACVM_VM_STOPPED', `Clone ${this.id} was destroyed.`));
    if (this.running) return Promise.resolve(this.running);
    const creation = this.creation;
    // Another process created this VM: a second POST would be a second VM under the same name.
    if (!creation) return Promise.reject(new MacvmError('MACVM_BAD_ARGUMENT', 'An attached VM cannot be booted again.'));
    const { deadline } = options;
    return deadline.run('boot', async (signal) => {
      const api = await this.api();
      const spec = vmSpec(this.vm, creation.source, options, creation.settings, creation.diskGiB);
      this.created = true;
      // cpus in vm.json mark "POST sent": `vm ls` and attach tell a VM the controller knows by them.
      await this.updateRecord({ cpus: options.cpus, memoryMiB: options.memoryMiB });
      await this.log(`POST ${api.url}/v1/vms name=${this.vm} image=${spec.image} cpu=${spec.cpu} memory=${spec.memory}`);
      try {
        await api.createVm(spec, signal);
      } catch (error) {
        // A refusal (4xx) means nothing was created; after a timeout or a 5xx the VM may exist.
        if (error instanceof OrchardApiError && error.status >= 400 && error.status < 500) this.created = false;
        if (signal.aborted) throw deadline.error();
        throw orchardError(error, { client: api, action: `create VM "${this.vm}" (image ${spec.image})`, fallback: 'MACVM_CLONE_FAILED', vm: this.vm });
      }
      await waitUntilRunning({ api, vm: this.vm, image: { name: this.image.name, source: creation.source }, pollIntervalMs: creation.pollIntervalMs, log: (line) => this.log(line) }, deadline, signal);
      deadline.enter('boot');
      return this.adopt();
    });
  }

  /**
   * Says where this process's port forward listens. The creating process records it in vm.json
   * as the VM's endpoint — unless the VM is detached (`macvm vm start`): it outlives this process,
   * the listener does not. Another process never writes vm.json (its port dies with it too);
   * console.log says which process holds which port, since several may reach the VM at once.
   */
  async noteEndpoint(local: LocalForward): Promise<void> {
    if (!this.creation) return this.log(`port-forward of process ${process.pid} listening on ${local.host}:${local.port}`);
    if (!this.creation.record.detached) await this.updateRecord({ ssh: { host: local.host, port: local.port } });
  }

  destroy(): Promise<void> {
    this.destroyRequested = true;
    this.destroying ??= (async () => {
      if (this.running) await this.running.stop();
      else if (this.created) await deleteVm(await this.api(), this.vm, (line) => this.log(line));
      // Only once the controller has let go of the VM: a failed DELETE leaves the record for `macvm gc`.
      await rm(this.runtimeDir, { recursive: true, force: true });
    })();
    // A failed DELETE (controller unreachable) may be tried again.
    this.destroying.catch(() => (this.destroying = undefined));
    return this.destroying;
  }

  private async updateRecord(change: Partial<VmRecord>): Promise<void> {
    if (!this.creation) return;
    this.creation.record = { ...this.creation.record, ...change };
    await writeVmRecord(this.runtimeDir, this.creation.record);
  }
}
