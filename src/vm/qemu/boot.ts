import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { availableParallelism, cpus as hostCpus } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MacvmError } from '../../errors.js';
import { freeLoopbackPort } from '../../util/free-port.js';
import { isSameProcess, processStartTime, waitForExit } from '../../util/process-identity.js';
import type { Deadline } from '../../shared/deadline.js';
import { writeVmRecord, type VmRecord } from '../runtime-dir.js';
import type { BootOptions, Clone, ExitInfo, GuestEndpoint, RunningVM } from '../types.js';
import { chooseAccelerator } from './accel.js';
import { buildQemuArgs, qemuBinary, type QemuLaunchSpec } from './args.js';
import type { QemuImageManifest } from './manifest.js';
import type { ResolvedQemuSettings } from './settings.js';
import { QmpClient } from './qmp.js';
import { waitForConsoleMarker } from './console-watch.js';
import { readVcpuTimes, vcpuThreadIds } from './vcpu-times.js';
import type { VcpuTimes } from '../../shared/cpu-clock.js';
import { DEFAULTS } from '../defaults.js';

export interface QemuBootExtras {
  /** Start qemu in its own process group so it outlives this process (`macvm vm start`). */
  detached?: boolean;
  /** Accelerator and binary, environment over config. */
  settings: ResolvedQemuSettings;
  /** MACVM_HOME, where accelerator verdicts are cached. */
  home: string;
}

interface QemuClone extends Clone {
  readonly image: Clone['image'] & { manifest: QemuImageManifest; authorizedKey?: string };
}

const PORT_ATTEMPTS = 3;

const warnedOvercommit = new Set<number>();

/**
 * More vCPUs than the host has CPUs: qemu allows it (Virtualization.framework does not), but
 * every vCPU is a host thread, so they take turns on the host's CPUs. Under TCG that turned a
 * 5 s boot into 100 s with `cpus: 64` on 2 CPUs, with nothing said; now it is said once per
 * process and count, in the suite's output.
 */
export function overcommitWarning(cpus: number, hostCpus: number, accel: string): string | undefined {
  if (cpus <= hostCpus) return undefined;
  const cost = accel === 'tcg' ? 'under software emulation (tcg) each one is a host thread, so expect a far slower boot and run' : 'they take turns on the host\'s CPUs';
  return `cpus: ${cpus} is more than this host's ${hostCpus} CPU${hostCpus === 1 ? '' : 's'}; ${cost} (cpus: ${hostCpus} or fewer avoids it).`;
}

export async function bootQemu(clone: QemuClone, overlay: string, record: VmRecord, options: BootOptions & QemuBootExtras): Promise<QemuRunningVM> {
  const { deadline } = options;
  return deadline.run('boot', async (signal) => {
    const manifest = clone.image.manifest;
    const binary = qemuBinary(manifest.arch, options.settings.binary);
    const accel = await chooseAccelerator({
      guestArch: manifest.arch,
      requested: options.settings.accelerator,
      binary,
      home: options.home,
      // Once per host state (the verdict is cached): say why this host runs emulated.
      onFallback: (reason) => process.stderr.write(`macvm: ${reason}\n`),
    });
    const overcommit = overcommitWarning(options.cpus, availableParallelism(), accel.accel);
    if (overcommit && !warnedOvercommit.has(options.cpus)) {
      warnedOvercommit.add(options.cpus);
      process.stderr.write(`macvm: ${overcommit}\n`);
    }
    const machine = options.display ? manifest.displayMachine : manifest.machine;
    for (let attempt = 1; ; attempt++) {
      const spec: QemuLaunchSpec = {
        name: clone.id,
        arch: manifest.arch,
        accel: accel.accel,
        cpu: accel.cpu,
        machine,
        cpus: options.cpus,
        memoryMiB: options.memoryMiB,
        disk: overlay,
        // Headless boots take the uncompressed kernel (PVH, a little faster); it has no VGA text console.
        kernel: options.display ? manifest.kernel : (manifest.headlessKernel ?? manifest.kernel),
        initrd: manifest.initrd,
        append: manifest.append,
        sshHostPort: await freeLoopbackPort(),
        qmpSocket: join(clone.runtimeDir, 'qmp.sock'),
        consoleLog: join(clone.runtimeDir, 'console.log'),
        display: options.display,
        network: options.network ?? 'none',
        tscKhz: hostTscKhz(),
        // The guest makes this root's only authorized key (authorized-key.ts): a public key, so
        // the command line, readable by any user in the guest, is a fine place for it.
        authorizedKey: clone.image.authorizedKey,
      };
      // Past the deadline the caller has given up on this boot (Deadline.run does not wait for
      // it): a qemu started now would be nobody's.
      if (signal.aborted) throw deadline.error();
      const child = spawnQemu(binary, spec, clone.runtimeDir, options.detached ?? false);
      const pid = child.pid;
      if (pid === undefined) throw new MacvmError('MACVM_BOOT_FAILED', `Could not start ${binary}.`);
      const exited = childExit(child);
      let updated: VmRecord;
      let qmp: QmpClient | undefined;
      try {
        updated = {
          ...record,
          pid,
          pidStartTime: await processStartTime(pid),
          ssh: { host: '127.0.0.1', port: spec.sshHostPort },
          cpus: options.cpus,
          memoryMiB: options.memoryMiB,
        };
        await writeVmRecord(clone.runtimeDir, updated);
        qmp = await connectQmpWhileAlive(spec.qmpSocket, exited, deadline);
        if (signal.aborted) {
          qmp?.close();
          throw deadline.error();
        }
      } catch (error) {
        // The deadline passed before QMP answered: nobody will hold this qemu, so it goes now,
        // before the caller deletes the runtime dir it writes into.
        child.kill('SIGKILL');
        await exited;
        throw error;
      }
      if (qmp) {
        return new QemuRunningVM(clone, updated, spec.qmpSocket, exited, qmp, child, manifest.readyMarker);
      }
      const log = await readQemuLog(clone.runtimeDir);
      if (/Could not set up host forwarding rule/i.test(log) && attempt < PORT_ATTEMPTS) continue;
      throw new MacvmError('MACVM_BOOT_FAILED', `qemu exited during start-up:\n${log.trim().split('\n').slice(-10).join('\n')}`, {
        hint: /kvm|hvf/i.test(log) ? `The ${accel.accel} accelerator failed (${accel.reason}); MACVM_ACCEL=tcg forces emulation.` : 'See qemu.log in the runtime dir; `macvm doctor` checks the host.',
        details: { argv: [binary, ...buildQemuArgs(spec)], accelerator: accel.accel, acceleratorReason: accel.reason },
      });
    }
  });
}

function spawnQemu(binary: string, spec: QemuLaunchSpec, runtimeDir: string, detached: boolean): ChildProcess {
  const logFd = openSync(join(runtimeDir, 'qemu.log'), 'a', 0o600);
  try {
    // Tied to its owner: on Linux, setpriv sets PR_SET_PDEATHSIG and execs qemu (same pid), so
    // the kernel kills qemu the moment the process that spawned it dies, however it dies. A
    // detached VM (`macvm vm start`) is meant to outlive its starter and is not tied.
    const tie = detached ? undefined : deathSignalWrapper();
    const child = spawn(tie ?? binary, tie ? ['--pdeathsig', 'KILL', '--', binary, ...buildQemuArgs(spec)] : buildQemuArgs(spec), {
      cwd: runtimeDir,
      stdio: ['ignore', logFd, logFd],
      detached,
    });
    child.on('error', () => {}); // surfaced through the exit promise and qemu.log
    // The VM never keeps the test worker alive; dispose() or the reaper stops it.
    child.unref();
    return child;
  } finally {
    closeSync(logFd);
  }
}

let setpriv: string | null | undefined = null;

/** util-linux `setpriv` (Linux), which can set the parent-death signal before it execs. */
function deathSignalWrapper(): string | undefined {
  if (setpriv !== null) return setpriv;
  setpriv = undefined;
  if (process.platform === 'linux') {
    for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/bin', '/bin'])) {
      if (dir && existsSync(join(dir, 'setpriv'))) {
        setpriv = join(dir, 'setpriv');
        break;
      }
    }
  }
  return setpriv;
}

function childExit(child: ChildProcess): Promise<ExitInfo> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve({ code: child.exitCode, signal: child.signalCode });
      return;
    }
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: null, signal: null }));
  });
}

/** qemu creates the QMP socket early in start-up; polling it tells "started" from "died". */
async function connectQmpWhileAlive(socket: string, exited: Promise<ExitInfo>, deadline: Deadline): Promise<QmpClient | undefined> {
  let dead = false;
  void exited.then(() => (dead = true));
  while (!dead) {
    try {
      return await QmpClient.connect(socket, 2_000);
    } catch {
      if (deadline.expired) throw deadline.error();
      await sleep(25);
    }
  }
  return undefined;
}

function hostTscKhz(): number | undefined {
  const mhz = hostCpus()[0]?.speed;
  return mhz ? mhz * 1000 : undefined;
}

export async function readQemuLog(runtimeDir: string): Promise<string> {
  try {
    return await readFile(join(runtimeDir, 'qemu.log'), 'utf8');
  } catch {
    return '';
  }
}

/**
 * A running qemu VM. Built either from the process we spawned, or (for `macvm vm stop`
 * from another CLI invocation) attached from its runtime record, in which case exit is
 * observed by polling the PID plus its start time.
 */
export class QemuRunningVM implements RunningVM {
  readonly exited: Promise<ExitInfo>;
  private stopping?: Promise<void>;
  private screenshotCount = 0;
  private vcpuThreads?: Promise<number[]>;

  constructor(
    readonly clone: Clone,
    readonly record: VmRecord,
    private readonly qmpSocket: string,
    exited: Promise<ExitInfo>,
    private qmp: QmpClient | undefined,
    private readonly child?: ChildProcess,
    /** Printed on the console once the guest's sshd listens (image manifest). */
    private readonly readyMarker?: string,
  ) {
    this.exited = exited;
    void exited.then(() => {
      this.qmp?.close();
    });
  }

  static attach(clone: Clone, record: VmRecord): QemuRunningVM {
    return new QemuRunningVM(clone, record, join(clone.runtimeDir, 'qmp.sock'), pollExit(record), undefined);
  }

  get pid(): number | undefined {
    return this.record.pid;
  }

  get consoleLogPath(): string {
    return join(this.clone.runtimeDir, 'console.log');
  }

  /**
   * The forwarded SSH port. Through QEMU's user-mode forwarding a connection made before the
   * guest's sshd listens is accepted and then hangs, costing a whole connect timeout; so when
   * the image prints a ready marker, the endpoint is handed out the moment the marker reaches
   * the console log (a watch on the log, not a poll), and the first SSH attempt lands.
   */
  async endpoint(deadline?: Deadline): Promise<GuestEndpoint> {
    if (!this.record.ssh) throw new MacvmError('MACVM_ADDRESS_NOT_FOUND', `VM ${this.clone.id} has no SSH forward recorded.`);
    if (this.readyMarker && deadline) {
      deadline.throwIfExpired();
      const stop = new AbortController();
      const signal = AbortSignal.any([stop.signal, deadline.signal]);
      // A VM that died never prints the marker: stop watching (the caller reports the exit),
      // rather than wait for the deadline.
      const died = this.exited.then(() => {
        throw new MacvmError('MACVM_VM_STOPPED', `VM ${this.clone.id} exited before its guest was ready.`);
      });
      try {
        await Promise.race([waitForConsoleMarker(this.consoleLogPath, this.readyMarker, { signal }), died]);
      } catch (error) {
        if (deadline.signal.aborted && !(error instanceof MacvmError && error.code === 'MACVM_VM_STOPPED')) throw deadline.error();
        throw error;
      } finally {
        died.catch(() => {});
        stop.abort();
      }
    }
    return this.record.ssh;
  }

  private async qmpClient(): Promise<QmpClient> {
    this.qmp ??= await QmpClient.connect(this.qmpSocket);
    return this.qmp;
  }

  async screenshot(): Promise<Buffer> {
    const file = join(this.clone.runtimeDir, `screen-${process.pid}-${this.screenshotCount++}.png`);
    try {
      await (await this.qmpClient()).execute('screendump', { filename: file, format: 'png' });
      return await readFile(file);
    } catch (error) {
      if (error instanceof MacvmError && /surface|console/i.test(error.message)) {
        throw new MacvmError('MACVM_NOT_SUPPORTED', `VM ${this.clone.id} has no display to capture.`, {
          hint: 'Start the VM with `display: true` (qemu attaches a VGA device then).',
          cause: error,
        });
      }
      throw error;
    } finally {
      await rm(file, { force: true });
    }
  }

  /**
   * The vCPU threads' host CPU time (vcpu-times.ts). Their thread ids are asked of QMP once;
   * each reading is then a few /proc reads (no QMP round trip), cheap enough to bracket
   * every benchmark round.
   */
  async cpuClock(): Promise<VcpuTimes | undefined> {
    const pid = this.record.pid;
    if (process.platform !== 'linux' || !pid || this.stopping) return undefined;
    this.vcpuThreads ??= this.qmpClient()
      .then((qmp) => qmp.execute('query-cpus-fast'))
      .then(vcpuThreadIds, () => []);
    return readVcpuTimes(pid, await this.vcpuThreads);
  }

  /** Graceful ACPI power-down, then QMP `quit`, then SIGKILL. Idempotent. */
  stop(options: { gracefulMs?: number } = {}): Promise<void> {
    this.stopping ??= this.stopInOrder(options.gracefulMs ?? DEFAULTS.stopGracefulMs);
    return this.stopping;
  }

  private async stopInOrder(gracefulMs: number): Promise<void> {
    if (await settledWithin(this.exited, 0)) return;
    if (gracefulMs > 0) {
      try {
        await (await this.qmpClient()).execute('system_powerdown');
        if (await settledWithin(this.exited, gracefulMs)) return;
      } catch {
        // QMP gone or refused: fall through to harder measures.
      }
    }
    try {
      await (await this.qmpClient()).execute('quit');
    } catch {
      // The socket closes as qemu quits; a rejected reply is expected.
    }
    if (await settledWithin(this.exited, 2_000)) return;
    if (this.record.pid && (await isSameProcess(this.record.pid, this.record.pidStartTime))) {
      try {
        process.kill(this.record.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    if (!(await settledWithin(this.exited, 5_000))) {
      throw new MacvmError('MACVM_STOP_FAILED', `qemu (pid ${this.record.pid}) did not exit after SIGKILL.`);
    }
    this.child?.removeAllListeners();
  }
}

async function pollExit(record: VmRecord): Promise<ExitInfo> {
  if (record.pid) await waitForExit(record.pid, record.pidStartTime);
  return { code: null, signal: null };
}

async function settledWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const done = promise.then(() => true as const);
  try {
    return await Promise.race([done, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
