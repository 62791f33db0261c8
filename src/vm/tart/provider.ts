import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { MacvmError } from '../../errors.js';
import { isSameProcess, processStartTime, waitForExit } from '../../util/process-identity.js';
import type { Deadline } from '../../shared/deadline.js';
import { createTaggedRuntimeDir, writeVmRecord, newVmRecord, type VmRecord } from '../runtime-dir.js';
import type { BootOptions, Clone, CloneOptions, ExitInfo, GuestEndpoint, Image, Provider, RunningVM } from '../types.js';
import { parseTartIp, runTart, tartError, tartList, type TartCli } from './cli.js';
import { pinnedCredentials, type ImageSshSettings } from '../credentials.js';
import { DEFAULTS } from '../defaults.js';

export type { ImageSshSettings as TartImageSettings } from '../credentials.js';

/**
 * The tart provider: Tart (cirruslabs) does the VM work, macvm supervises it.
 *   clone  `tart clone <image> <name>`          (APFS copy-on-write inside Tart)
 *   boot   `tart set <name> --cpu N --memory M`, then `tart run --no-graphics <name>` as a supervised child
 *   addr   `tart ip --wait <secs> <name>`
 *   stop   `tart stop --timeout <secs> <name>`  delete  `tart delete <name>`
 *
 * SSH: Cirrus Labs' images log in as admin/admin. The guest's host key is pinned, never
 * learned: each image needs `hostKey` in the provider settings (`images: { "<image>": { hostKey } }`),
 * unless `insecureAcceptAnyHostKey: true` is set for throwaway use.
 */

export interface TartProviderOptions {
  /** The tart executable; default "tart" on PATH. */
  tart?: string;
  env?: NodeJS.ProcessEnv;
  /** Keep `tart run` alive after this process exits (`macvm vm start`). */
  detached?: boolean;
  /** SSH settings per image name ("*" for every image). */
  images?: Record<string, ImageSshSettings>;
  /** Accept any guest host key (never for shared machines). Images without hostKey are refused otherwise. */
  insecureAcceptAnyHostKey?: boolean;
}


export interface TartImage extends Image {
  provider: 'tart';
}

export function createTartProvider(options: TartProviderOptions = {}): Provider {
  const cli: TartCli = { binary: options.tart ?? 'tart', env: options.env };
  return {
    name: 'tart',
    async prepare(imageRef: string): Promise<TartImage> {
      if (!/^[A-Za-z0-9][A-Za-z0-9._\-/:@]*$/.test(imageRef)) {
        throw new MacvmError('MACVM_BAD_ARGUMENT', `"${imageRef}" is not a Tart VM or image name.`);
      }
      const known = (await tartList(cli)).find((entry) => entry.Name === imageRef);
      // A remote reference (ghcr.io/cirruslabs/macos-sonoma-base:latest) is pulled by `tart clone` itself.
      if (!known && !imageRef.includes('/')) {
        throw new MacvmError('MACVM_IMAGE_NOT_FOUND', `Tart has no VM or image named "${imageRef}".`, {
          hint: 'See `tart list`; pull one with `tart pull ghcr.io/cirruslabs/macos-sonoma-base:latest`.',
        });
      }
      return {
        name: imageRef,
        provider: 'tart',
        location: imageRef,
        os: 'macos',
        arch: 'aarch64',
        ssh: pinnedCredentials('tart', imageRef, options),
        facts: known ? { tartSource: known.Source } : { tartSource: 'remote' },
      };
    },

    async clone(image: Image, cloneOptions: CloneOptions): Promise<Clone> {
      const name = `macvm-${randomBytes(4).toString('hex')}`;
      // Tagged before tart creates anything: the reaper knows how to remove it from here on.
      const record = newVmRecord({
        id: name,
        session: cloneOptions.session.id,
        provider: 'tart',
        image: image.name,
        cleanup: [
          [cli.binary, 'stop', name],
          [cli.binary, 'delete', name],
        ],
        detached: options.detached,
      });
      const runtimeDir = await createTaggedRuntimeDir(record);
      try {
        await cloneOptions.deadline.run('clone', async (signal) => {
          await runTart(cli, ['clone', image.location, name], { signal, fallback: 'MACVM_CLONE_FAILED' });
          if (cloneOptions.diskGiB !== undefined) {
            await runTart(cli, ['set', name, '--disk-size', String(cloneOptions.diskGiB)], { signal, fallback: 'MACVM_CLONE_FAILED' });
          }
        });
      } catch (error) {
        await runTart(cli, ['delete', name]).catch(() => {});
        await rm(runtimeDir, { recursive: true, force: true });
        throw error;
      }
      return new TartClone(name, image, runtimeDir, record, cli, options.detached ?? false);
    },
  };
}

/**
 * A tart VM started by another process (`macvm vm start --provider tart`), known from its
 * runtime dir: enough to stop it with `tart stop` and delete it with `tart delete`. The tart
 * binary is the one recorded in vm.json's cleanup commands, i.e. the one that made the clone.
 */
export function attachTartVm(dir: string, record: VmRecord): { clone: Clone; running: RunningVM | undefined } {
  const binary = record.cleanup?.find((argv) => argv[1] === 'delete')?.[0] ?? 'tart';
  const cli: TartCli = { binary };
  const clone = new TartClone(record.id, { name: record.image, provider: 'tart' } as Image, dir, record, cli, true);
  if (record.pid === undefined) return { clone, running: undefined };
  const pid = record.pid;
  const exited = waitForExit(pid, record.pidStartTime).then((): ExitInfo => ({ code: null, signal: null }));
  const kill = () => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  };
  const running = new TartRunningVM(clone, record, cli, kill, exited, join(dir, 'console.log'));
  clone.adopt(running);
  return { clone, running };
}

class TartClone implements Clone {
  /** Its Tart VM outlives `tart run`: a second boot() runs it again, from its disk as the guest left it. */
  readonly bootsAgain = true;
  private running?: TartRunningVM;
  private destroyed?: Promise<void>;

  constructor(
    readonly id: string,
    readonly image: Image,
    readonly runtimeDir: string,
    private readonly record: VmRecord,
    private readonly cli: TartCli,
    private readonly detached: boolean,
  ) {}

  /** Takes on a VM that another process booted from this clone (attachTartVm). */
  adopt(running: TartRunningVM): void {
    this.running = running;
  }

  async boot(options: BootOptions): Promise<RunningVM> {
    if (this.destroyed) throw new MacvmError('MACVM_VM_STOPPED', `Clone ${this.id} was destroyed.`);
    return options.deadline.run('boot', async (signal) => {
      // Tart takes --memory in MiB ("megabytes" in its help) and refuses less than the image's minimum.
      await runTart(this.cli, ['set', this.id, '--cpu', String(options.cpus), '--memory', String(options.memoryMiB)], { signal });
      const consoleLog = join(this.runtimeDir, 'console.log');
      // Past the deadline the caller has given up on this boot (Deadline.run does not wait for it).
      if (signal.aborted) throw options.deadline.error();
      const logFd = openSync(consoleLog, 'a', 0o600);
      let child: ChildProcess;
      try {
        child = spawn(this.cli.binary, ['run', '--no-graphics', this.id], {
          cwd: this.runtimeDir,
          env: this.cli.env ?? process.env,
          stdio: ['ignore', logFd, logFd],
          detached: this.detached,
        });
      } finally {
        closeSync(logFd);
      }
      child.on('error', () => {}); // surfaced through `exited`
      child.unref();
      const exited = new Promise<ExitInfo>((resolve) => {
        child.once('exit', (code, sig) => resolve({ code, signal: sig }));
        child.once('error', () => resolve({ code: null, signal: null }));
      });
      if (child.pid === undefined) throw new MacvmError('MACVM_BOOT_FAILED', `Could not start ${this.cli.binary} run.`);
      const record: VmRecord = { ...this.record, pid: child.pid, pidStartTime: await processStartTime(child.pid), cpus: options.cpus, memoryMiB: options.memoryMiB };
      await writeVmRecord(this.runtimeDir, record);
      if (signal.aborted) {
        // Given up on while its record was written: nobody will hold this `tart run`.
        child.kill('SIGKILL');
        await exited;
        throw options.deadline.error();
      }
      this.running = new TartRunningVM(this, record, this.cli, () => child.kill('SIGKILL'), exited, consoleLog);
      return this.running;
    });
  }

  destroy(): Promise<void> {
    this.destroyed ??= (async () => {
      try {
        await this.running?.stop({ gracefulMs: 0 });
        await runTart(this.cli, ['delete', this.id]).catch((error: unknown) => {
          if (!(error instanceof MacvmError && error.code === 'MACVM_VM_NOT_FOUND')) throw error;
        });
      } finally {
        await rm(this.runtimeDir, { recursive: true, force: true });
      }
    })();
    return this.destroyed;
  }
}

class TartRunningVM implements RunningVM {
  private stopping?: Promise<void>;
  private exitInfo?: ExitInfo;

  constructor(
    readonly clone: Clone,
    private record: VmRecord,
    private readonly cli: TartCli,
    /** Kills `tart run` outright (the last resort of stop). */
    private readonly kill: () => void,
    readonly exited: Promise<ExitInfo>,
    readonly consoleLogPath: string,
  ) {
    void exited.then((info) => (this.exitInfo = info));
  }

  get pid(): number | undefined {
    return this.record.pid;
  }

  async endpoint(deadline: Deadline): Promise<GuestEndpoint> {
    return deadline.run('address', async (signal) => {
      const ip = this.askTartForIp(deadline, signal);
      ip.catch(() => {}); // when `died` wins the race, this rejection is expected and already reported
      // If `tart run` dies meanwhile, say why instead of waiting out the deadline.
      let answered = false;
      const died = this.exited.then(async (info): Promise<never> => {
        if (answered) return new Promise<never>(() => {});
        throw await this.bootFailure(info);
      });
      let out: string;
      try {
        out = await Promise.race([ip, died]);
      } finally {
        answered = true;
      }
      const host = parseTartIp(out);
      if (!host) throw new MacvmError('MACVM_ADDRESS_NOT_FOUND', `\`tart ip\` printed no address: ${out.trim().slice(0, 120)}`);
      this.record = { ...this.record, ssh: { host, port: 22 } };
      await writeVmRecord(this.clone.runtimeDir, this.record);
      return { host, port: 22 };
    });
  }

  /**
   * `tart ip --wait <secs>` for the time the deadline has left. Its whole-second wait can end
   * just before the deadline does ("no IP address found"); then ask again, so the deadline —
   * not tart's rounding — decides when to give up, and the error names the step.
   */
  private async askTartForIp(deadline: Deadline, signal: AbortSignal): Promise<string> {
    for (;;) {
      const waitSeconds = Math.max(1, Math.floor(deadline.remainingMs() / 1000));
      try {
        return await runTart(this.cli, ['ip', '--wait', String(waitSeconds), this.clone.id], { signal, fallback: 'MACVM_ADDRESS_NOT_FOUND' });
      } catch (error) {
        if (!(error instanceof MacvmError && error.code === 'MACVM_ADDRESS_NOT_FOUND') || signal.aborted) throw error;
        if (deadline.expired) throw deadline.error();
        await deadline.sleep(200);
      }
    }
  }

  private async bootFailure(info: ExitInfo): Promise<MacvmError> {
    const log = await readFile(this.consoleLogPath, 'utf8').catch(() => '');
    const tail = log.trim().split('\n').slice(-10).join('\n');
    const mapped = tartError(['run', '--no-graphics', this.clone.id], tail, 'MACVM_BOOT_FAILED');
    if (mapped.code !== 'MACVM_BOOT_FAILED') return mapped;
    return new MacvmError('MACVM_BOOT_FAILED', `tart run exited (code ${info.code ?? info.signal}) before the VM had an address.${tail ? `\n${tail}` : ''}`, {
      hint: `See ${this.consoleLogPath}.`,
    });
  }

  stop(options: { gracefulMs?: number } = {}): Promise<void> {
    this.stopping ??= this.stopInOrder(options.gracefulMs ?? DEFAULTS.stopGracefulMs);
    return this.stopping;
  }

  private async stopInOrder(gracefulMs: number): Promise<void> {
    if (this.exitInfo) return;
    // tart stop: SIGINT to `tart run` (the guest is asked to shut down), then SIGKILL after --timeout.
    const seconds = String(Math.ceil(gracefulMs / 1000));
    await runTart(this.cli, ['stop', '--timeout', seconds, this.clone.id], { fallback: 'MACVM_STOP_FAILED' }).catch(() => {});
    if (await settledWithin(this.exited, 5_000)) return;
    if (this.record.pid && (await isSameProcess(this.record.pid, this.record.pidStartTime))) this.kill();
    if (!(await settledWithin(this.exited, 5_000))) {
      throw new MacvmError('MACVM_STOP_FAILED', `tart run (pid ${this.record.pid}) for ${this.clone.id} did not exit.`);
    }
  }
}

async function settledWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise.then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
