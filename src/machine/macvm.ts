import { MacvmError, isMacvmError, messageOf } from '../errors.js';
import type { ExecOptions, ExecResult, GuestSession, PortForward, ShellTemplate } from '../guest/types.js';
import { startGuestBrowser, type BrowserOptions } from '../guest/browser.js';
import { captureMacosScreen, captureStable, type StableCaptureOptions } from '../guest/screen.js';
import { gpu, type GpuInfo } from '../guest/gpu.js';
import { shellTemplate } from '../guest/shell-quote.js';
import { startSimulator, type Simulator, type SimulatorOptions } from '../guest/simulator.js';
import { consoleTail } from '../vm/console-tail.js';
import { DEFAULTS } from '../vm/defaults.js';
import type { Clone, ExitInfo, GuestArch, GuestOS, ProviderName, RunningVM } from '../vm/types.js';
import type { VcpuTimes } from '../shared/cpu-clock.js';
import { assertOptions } from '../util/validate.js';
import { BROWSER_OPTIONS_RULE, SIMULATOR_OPTIONS_RULE, EXEC_OPTIONS_RULE, EXPOSE_HOST_PORT_OPTIONS_RULE, FORWARD_GUEST_PORT_OPTIONS_RULE, RESTART_OPTIONS_RULE, SCREENSHOT_OPTIONS_RULE, WRITE_FILE_OPTIONS_RULE } from './call-options.js';
import { LastingForwards } from './lasting-forwards.js';
import type { ReadyVM } from './ready-chain.js';
import { callSite, withCallSite } from '../util/call-site.js';

/** What a spec, a report and a benchmark may want to know about the VM. */
export interface VmFacts {
  id: string;
  provider: ProviderName;
  image: string;
  os: GuestOS;
  arch: GuestArch;
  cpus: number;
  memoryMiB: number;
  display: boolean;
  /** ms from the start of the chain until the VM process ran (clone + boot). */
  bootMs: number;
  /** ms from the start of the chain until the wait strategy passed. */
  readyMs: number;
  /** Facts the image recorded at build time (kernel, OS build...). */
  imageFacts: Record<string, string>;
}

type Disposer = () => Promise<void> | void;

/** Boots the VM's clone again and runs its ready chain (startMacVM makes it, for clones that boot again). */
export interface Restarter {
  /** The restart begins stopping the VM (progress: `restart: stop`). */
  stopping(): void;
  /** Boots the clone again and runs the ready chain under a deadline of its own. */
  boot(deadlineMs: number | undefined, onBooted: (vm: RunningVM) => void): Promise<ReadyVM>;
}

/** What one vm.restart() took, in ms from its start. */
export interface RestartTimes {
  /** Until the guest was told to sync and its VM process was gone. */
  stopMs: number;
  /** Until the new VM process ran. */
  bootMs: number;
  /** Until the wait strategy passed again. */
  readyMs: number;
}

/** How long the guest gets to write its caches out before a restart stops it. */
const RESTART_SYNC_MS = 30_000;
/** How long a browser or simulator gets to close before a restart stops the VM under it. */
const RESTART_CLOSE_MS = 10_000;

/**
 * Errors that mean "the connection into the guest broke", which a VM that died causes. After
 * one of them, this long is given for the VM process's exit to be noticed (the SSH connection
 * often breaks a moment before the host sees the process end).
 */
const CONNECTION_ERRORS = new Set(['MACVM_SESSION_CLOSED', 'MACVM_SSH_CONNECT_FAILED', 'MACVM_TRANSFER_FAILED', 'MACVM_FORWARD_FAILED']);
const EXIT_NOTICE_MS = 3_000;
/** Console lines quoted in a MACVM_VM_STOPPED message. */
const STOPPED_TAIL_LINES = 20;
/** How far back the console is searched for a kernel panic line (Linux: "Kernel panic - not syncing"). */
const PANIC_SCAN_LINES = 300;
const PANIC_LINE = /Kernel panic - not syncing|^panic\(/;

/**
 * The object a spec sees: a fresh VM reached over SSH. Everything a suite starts through
 * it (forwards, browser sessions, simulators) registers a disposer, and dispose() undoes
 * them in reverse order before stopping the VM and deleting the clone.
 */
export class MacVM implements AsyncDisposable {
  private readonly disposers: Disposer[] = [];
  private readonly afterStop: Disposer[] = [];
  /** What lives in the guest's memory (browser sessions, simulators): a restart ends them. */
  private readonly guestScoped = new Set<{ close: Disposer; retire: () => void }>();
  private readonly forwards = new LastingForwards();
  private disposing?: Promise<void>;
  private restarting?: Promise<RestartTimes>;
  /** Why the last vm.restart() failed; the VM is stopped then, and later calls say so. */
  private restartFailure?: unknown;
  /** Set once the VM process has exited; every later call fails with MACVM_VM_STOPPED (until a restart). */
  private exit?: ExitInfo;

  constructor(
    readonly facts: VmFacts,
    private current: GuestSession,
    private running: RunningVM | undefined,
    private readonly clone: Clone | undefined,
    private readonly options: {
      env?: Record<string, string>;
      stopTimeoutMs?: number;
      /** How long a connection error waits to see whether the VM process is exiting (default 3 s). */
      exitNoticeMs?: number;
      /** Boots the clone again (vm.restart()); absent where the provider cannot. */
      restart?: Restarter;
      /** Why vm.restart() cannot, in the provider's words. */
      restartRefusal?: string;
    } = {},
  ) {
    if (running) this.watchExit(running);
  }

  /** The SSH session into the guest; a restart replaces it, so take it afresh after one. */
  get session(): GuestSession {
    return this.current;
  }

  get id(): string {
    return this.facts.id;
  }

  get disposed(): boolean {
    return this.disposing !== undefined;
  }

  get consoleLogPath(): string | undefined {
    return this.running?.consoleLogPath;
  }

  async exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    assertOptions(options, EXEC_OPTIONS_RULE, 'vm.exec() options');
    return this.guard(() => this.current.exec(command, { ...options, env: { ...this.options.env, ...options.env } }));
  }

  /** sh`cat ${file}`: interpolations are shell-quoted. */
  get sh(): ShellTemplate {
    return this.shWith({});
  }

  shWith(options: ExecOptions): ShellTemplate {
    // Checked here too, so the mistake is named where the template is made.
    assertOptions(options, EXEC_OPTIONS_RULE, 'vm.shWith() options');
    // Through exec(), so a stopped VM is reported the same way.
    return shellTemplate((command) => this.exec(command, options));
  }

  async upload(localPath: string, remotePath: string): Promise<void> {
    return this.guard(() => this.current.upload(localPath, remotePath));
  }

  async download(remotePath: string, localPath: string): Promise<void> {
    return this.guard(() => this.current.download(remotePath, localPath));
  }

  async writeFile(remotePath: string, data: string | Buffer, options?: { mode?: number }): Promise<void> {
    assertOptions(options, WRITE_FILE_OPTIONS_RULE, 'vm.writeFile() options');
    return this.guard(() => this.current.writeFile(remotePath, data, options));
  }

  async readFile(remotePath: string): Promise<Buffer> {
    return this.guard(() => this.current.readFile(remotePath));
  }

  /** A guest port, reachable from the host at 127.0.0.1:<returned forward.port>. */
  async forwardGuestPort(guestPort: number, options?: { guestHost?: string; localPort?: number }): Promise<PortForward> {
    assertOptions(options, FORWARD_GUEST_PORT_OPTIONS_RULE, 'vm.forwardGuestPort() options');
    const forward = await this.guard(() => this.forwards.guestPort(this.current, guestPort, options));
    this.defer(() => forward.close());
    return forward;
  }

  /**
   * A service on the host's loopback, reachable from the guest: returns the guest-side
   * port, so guest browsers open `http://localhost:<port>/`.
   */
  async exposeHostPort(hostPort: number, options?: { guestPort?: number }): Promise<number> {
    assertOptions(options, EXPOSE_HOST_PORT_OPTIONS_RULE, 'vm.exposeHostPort() options');
    // A page that cannot load says only "cannot connect" in the guest's browser; say why here, once.
    let told = false;
    const onHostUnreachable = (error: Error): void => {
      if (told) return;
      told = true;
      const why = (error as NodeJS.ErrnoException).code ?? error.message;
      process.stderr.write(
        `macvm: VM ${this.id}: a guest connection to vm.exposeHostPort(${hostPort}) found nothing listening on 127.0.0.1:${hostPort} on this host (${why}); ` +
          'start the server before the guest uses it.\n',
      );
    };
    const forward = await this.guard(() => this.forwards.hostPort(this.current, hostPort, { ...options, onHostUnreachable }));
    this.defer(() => forward.close());
    return forward.port;
  }

  /**
   * A WebDriver session on a browser INSIDE the guest (chromedriver on Linux, safaridriver or
   * chromedriver on macOS), tunnelled over the guest session. Deleted, with its driver
   * stopped and temp files removed, when the VM is disposed.
   */
  async browser(options: BrowserOptions): Promise<WebdriverIO.Browser> {
    assertOptions(options, BROWSER_OPTIONS_RULE, 'vm.browser() options');
    const started = await this.guard(() => startGuestBrowser({ session: this.current, os: this.facts.os }, options));
    this.deferGuestScoped(() => started.close());
    return started.browser;
  }

  /** Safari in a macOS guest (needs `sudo safaridriver --enable` once in the golden image). */
  safari(capabilities?: WebdriverIO.Capabilities): Promise<WebdriverIO.Browser> {
    return this.browser({ browserName: 'safari', capabilities });
  }

  /**
   * The VM display as PNG: from the host where the provider can (qemu: QMP screendump, needs
   * `display: true`), else inside a macOS guest with `screencapture`. With `stable: true` it
   * retakes until two captures match, so a blinking cursor or a page still drawing cannot
   * make a snapshot flaky.
   */
  async screenshot(options: { stable?: boolean } & StableCaptureOptions = {}): Promise<Buffer> {
    assertOptions(options, SCREENSHOT_OPTIONS_RULE, 'vm.screenshot() options');
    this.assertUsable();
    const capture = this.running?.screenshot
      ? () => this.running!.screenshot!()
      : this.facts.os === 'macos'
        ? () => captureMacosScreen(this.current)
        : undefined;
    if (!capture) {
      throw new MacvmError('MACVM_NOT_SUPPORTED', `The ${this.facts.provider} provider cannot capture this ${this.facts.os} guest's display.`, {
        hint: this.facts.provider === 'qemu' ? 'Start the VM with `display: true`.' : undefined,
      });
    }
    return this.guard(() => (options.stable ? captureStable(capture, options) : capture()));
  }

  /**
   * An iOS Simulator device in a macOS guest (xcrun simctl): found or created, booted, and
   * shut down — and deleted if this call created it — when the VM is disposed.
   */
  async simulator(options: SimulatorOptions): Promise<Simulator> {
    assertOptions(options, SIMULATOR_OPTIONS_RULE, 'vm.simulator() options');
    this.assertUsable();
    this.assertMacOS('vm.simulator()');
    const simulator = await this.guard(() => startSimulator(this.current, options));
    this.deferGuestScoped(() => simulator.dispose());
    return simulator;
  }

  /** The guest's renderer (system_profiler): name, vendor, Metal support, software or not. */
  async gpu(): Promise<GpuInfo> {
    this.assertUsable();
    if (this.facts.os !== 'macos') {
      // A Linux test guest has no GPU of its own: report software rendering plainly.
      return { name: `${this.facts.provider} ${this.facts.display ? 'VGA' : 'headless'} (no GPU)`, vendor: 'none', metal: undefined, software: true, displays: [] };
    }
    return this.guard(() => gpu(this.current));
  }

  /**
   * The VM's vCPU time as the host counts it — time on a host CPU and time lost waiting for
   * one (src/shared/cpu-clock.ts) — where the provider can read it (qemu on Linux); else
   * undefined. Benchmarks use it to take the host's steal out of the guest's CPU times.
   */
  async cpuClock(): Promise<VcpuTimes | undefined> {
    if (this.disposing || this.exit) return undefined;
    return (await this.running?.cpuClock?.()) ?? undefined;
  }

  /** The last lines of the guest's console log (empty where the provider has none). */
  consoleTail(lines = 30): Promise<string> {
    return consoleTail(this.running?.consoleLogPath, lines);
  }

  /** Registers cleanup that runs (last registered first) when the VM is disposed. */
  defer(disposer: Disposer): void {
    this.disposers.push(disposer);
  }

  /**
   * Restarts the guest on the same clone, as a reboot would: the disk keeps what the guest
   * wrote (its caches are synced first), memory does not. The VM process is stopped (a graceful
   * power-down first) and booted again, and the suite's wait strategy runs again under a
   * deadline of its own (`deadline`, ms; the VM's start deadline by default). Forwards keep their
   * ports: a host port from forwardGuestPort and a guest port from exposeHostPort work again
   * once this resolves. Browser sessions and simulators lived in the guest's memory: they are
   * closed, and are opened again with vm.browser() / vm.simulator(). Works also after the VM
   * stopped on its own (the guest powered off or rebooted: qemu exits then), to bring it back.
   */
  async restart(options: { deadline?: number } = {}): Promise<RestartTimes> {
    assertOptions(options, RESTART_OPTIONS_RULE, 'vm.restart() options');
    this.assertUsable();
    const restart = this.options.restart;
    if (!restart) {
      const why = this.options.restartRefusal ?? `the ${this.facts.provider} provider cannot boot this VM again from here (it was not started by this process)`;
      throw new MacvmError('MACVM_NOT_SUPPORTED', `vm.restart() cannot restart VM ${this.id}: ${why}.`, {
        hint: 'Reboot from inside the guest and wait for SSH yourself, or start a fresh VM (the next withMacVM suite).',
      });
    }
    this.restarting ??= this.restartInOrder(restart, options.deadline).finally(() => {
      this.restarting = undefined;
    });
    return this.restarting;
  }

  /**
   * Registers work that must wait until the VM process has exited and its clone is gone,
   * e.g. giving back the host slot the VM held: released any earlier, a waiting run could
   * boot a third VM while this one is still shutting down. Runs even when stopping failed,
   * so one stuck VM cannot hold its run's slot until the process exits.
   */
  onStopped(callback: Disposer): void {
    this.afterStop.push(callback);
  }

  /** Stops everything the suite started, the VM, and deletes the clone. Idempotent. */
  dispose(): Promise<void> {
    this.disposing ??= this.disposeInOrder();
    return this.disposing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }

  private async restartInOrder(restart: Restarter, deadlineMs: number | undefined): Promise<RestartTimes> {
    const started = performance.now();
    const since = (): number => Math.round(performance.now() - started);
    this.restartFailure = undefined;
    let bootMs = 0;
    let stopMs = 0;
    try {
      restart.stopping();
      if (!this.exit) {
        // A stop may end in a hard power-off: what the guest wrote must be on its disk first.
        await this.current.exec('sync', { timeoutMs: RESTART_SYNC_MS, reject: false }).catch(() => {});
        await Promise.all([...this.guestScoped].map((scoped) => withinMs(scoped.close, RESTART_CLOSE_MS)));
      }
      // Closed now or gone with the guest's memory: nothing is left for dispose() to close.
      for (const scoped of this.guestScoped) scoped.retire();
      this.guestScoped.clear();
      await this.forwards.suspend();
      await this.current.close().catch(() => {});
      await this.running?.stop({ gracefulMs: this.options.stopTimeoutMs ?? DEFAULTS.stopGracefulMs });
      stopMs = since();
      const ready = await restart.boot(deadlineMs, (vm) => {
        // Set at once: a dispose() while the chain runs stops this process too.
        this.running = vm;
        this.exit = undefined;
        this.watchExit(vm);
        bootMs = since();
      });
      this.current = ready.session;
      await this.forwards.reopen(ready.session);
    } catch (error) {
      // Whatever came up is stopped: later calls say the VM did not come back, and why, instead of hanging.
      this.restartFailure = error;
      await this.running?.stop({ gracefulMs: 0 }).catch(() => {});
      this.exit ??= { code: null, signal: null };
      throw error;
    }
    return { stopMs, bootMs, readyMs: since() };
  }

  /** Closed on dispose like any disposer, and also by a restart, which ends the guest memory it lived in. */
  private deferGuestScoped(close: Disposer): void {
    let done: Promise<void> | undefined;
    this.guestScoped.add({
      close: () => Promise.resolve().then(close),
      retire: () => {
        done = Promise.resolve();
      },
    });
    this.defer(() => (done ??= Promise.resolve().then(close)));
  }

  /** The exit of `vm` marks this MacVM stopped, unless a restart has replaced it by then. */
  private watchExit(vm: RunningVM): void {
    void vm.exited.then((exit) => {
      if (this.running === vm) this.exit = exit;
    });
  }

  private async disposeInOrder(): Promise<void> {
    const errors: unknown[] = [];
    // A restart under way finishes first (its deadline bounds it): what it opens is then closed below.
    await this.restarting?.catch(() => {});
    for (const disposer of this.disposers.reverse()) {
      try {
        await disposer();
      } catch (error) {
        errors.push(error);
      }
    }
    await this.current.close().catch((error: unknown) => errors.push(error));
    try {
      await this.running?.stop({ gracefulMs: this.options.stopTimeoutMs ?? DEFAULTS.stopGracefulMs });
    } catch (error) {
      errors.push(error);
    }
    try {
      await this.clone?.destroy();
    } catch (error) {
      errors.push(error);
    }
    for (const callback of this.afterStop) {
      try {
        await callback();
      } catch (error) {
        errors.push(error);
      }
    }
    if (errors.length > 0) {
      throw new MacvmError('MACVM_STOP_FAILED', `Disposing VM ${this.id} hit ${errors.length} error(s); the first: ${String((errors[0] as Error)?.message ?? errors[0])}`, {
        cause: errors[0],
      });
    }
  }

  private assertMacOS(what: string): void {
    if (this.facts.os !== 'macos') {
      throw new MacvmError('MACVM_NOT_SUPPORTED', `${what} needs a macOS guest; ${this.facts.image} is ${this.facts.os}.`, {
        hint: 'Use a macOS image (vz or tart provider on an Apple Silicon Mac, or the ssh provider to a Mac).',
      });
    }
  }

  private assertUsable(): void {
    if (this.disposing) {
      throw new MacvmError('MACVM_SESSION_CLOSED', `VM ${this.id} was disposed; it cannot be used any more.`, {
        hint: 'Use the VM only inside its withMacVM() block (or before calling dispose()).',
      });
    }
  }

  /** Runs `work` (see guarded()); a failure names the spec line that called (see call-site.ts). */
  private async guard<T>(work: () => Promise<T>): Promise<T> {
    const site = callSite();
    try {
      return await this.guarded(work);
    } catch (error) {
      throw withCallSite(error, site);
    }
  }

  /**
   * Runs one call into the guest so that a VM whose process has exited is reported as what it
   * is — MACVM_VM_STOPPED with the exit status and the console tail — instead of as whatever
   * the broken SSH connection happened to say: before the call, while it runs (the exit wins
   * the race, so a call never waits for keepalives to notice), and after a connection error.
   */
  private async guarded<T>(work: () => Promise<T>): Promise<T> {
    this.assertUsable();
    if (this.restarting) {
      // A call made while the VM restarts goes to the VM that comes back.
      await this.restarting.catch(() => {});
      this.assertUsable();
    }
    if (this.exit) throw await this.stoppedError(this.exit);
    const running = work();
    if (!this.running) return running;
    const exited = this.running.exited.then((exit) => ({ exit }));
    let outcome: { value: T } | { exit: ExitInfo };
    try {
      outcome = await Promise.race([running.then((value) => ({ value })), exited]);
    } catch (error) {
      const exit = await this.exitAfter(error);
      if (exit && !this.disposing) throw await this.stoppedError(exit, error);
      throw error;
    }
    if ('value' in outcome) return outcome.value;
    running.catch(() => {});
    if (this.disposing) this.assertUsable();
    throw await this.stoppedError(outcome.exit);
  }

  /** The VM's exit, when `error` is the kind a dying VM causes and the process has ended (or ends very soon). */
  private async exitAfter(error: unknown): Promise<ExitInfo | undefined> {
    if (this.exit || !this.running) return this.exit;
    // Anything else (a failed command, the caller's own abort) is answered at once.
    if (!isMacvmError(error) || !CONNECTION_ERRORS.has(error.code)) return undefined;
    // A transfer refused by a file system (the host's, or the guest's in an SFTP answer) had a working connection.
    if (error.code === 'MACVM_TRANSFER_FAILED' && (error.details.side === 'host' || error.details.side === 'guest')) return undefined;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), this.options.exitNoticeMs ?? EXIT_NOTICE_MS);
    });
    try {
      return await Promise.race([this.running.exited, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async stoppedError(exit: ExitInfo, cause?: unknown): Promise<MacvmError> {
    const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
    // A panic's own line comes before its long stack trace, so it is looked for further back.
    const recent = (await this.consoleTail(PANIC_SCAN_LINES)).split('\n');
    const tail = recent.slice(-STOPPED_TAIL_LINES).join('\n');
    const panic = recent.findLast((line) => PANIC_LINE.test(line))?.trim();
    const quoted = tail ? `\nLast console lines:\n${tail.split('\n').map((line) => `  ${line}`).join('\n')}` : '\n(The console log is empty.)';
    const said = this.restartFailure !== undefined ? ` It did not come back from vm.restart(): ${messageOf(this.restartFailure).split('\n')[0]}` : panic ? ` The guest kernel panicked: ${panic}` : '';
    return new MacvmError('MACVM_VM_STOPPED', `VM ${this.id} stopped while in use: its ${this.facts.provider} process ${how}.${said}${quoted}`, {
      hint: 'The console lines above show why (a kernel panic, a power-off, a host kill). vm.restart() boots it again from its disk (qemu, vz, tart); a fresh VM (the next suite) starts clean.',
      details: { exit, consoleTail: tail, consoleLogPath: this.consoleLogPath, ...(cause ? { error: messageOf(cause) } : {}) },
      cause,
    });
  }
}

/** Runs `close`, giving up on it (not failing) after `ms`: a restart must not hang on a guest that stopped answering. */
async function withinMs(close: Disposer, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
  try {
    await Promise.race([Promise.resolve().then(close).catch(() => {}), late]);
  } finally {
    clearTimeout(timer);
  }
}
