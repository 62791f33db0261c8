import { join } from 'node:path';
import { MacvmError } from '../errors.js';
import { assertOptions, type Rule } from '../util/validate.js';
import { PROVIDER_NAMES, providerDefinition } from '../vm/registry.js';
import { requireGpu } from '../guest/gpu.js';
import type { MacVM } from '../machine/macvm.js';
import { startMacVM, VM_OPTION_RULES, type StartMacVMOptions } from '../machine/start.js';
import type { NetworkMode, ProviderName } from '../vm/types.js';
import type { WaitStrategy } from '../machine/wait.js';
import { copyArtifact, suiteArtifactDir } from './artifacts.js';
import { reportProgress } from './progress-client.js';
import type { RunContext } from './run-context.js';
import { acquireSlot, type SlotLease } from './slots.js';
import { runnerGoneSignal } from './worker-watch.js';
import { isAlive } from '../util/process-identity.js';

/** The options of one withMacVM() suite, as users write them. */
export interface SuiteVMOptions {
  image?: string;
  provider?: ProviderName;
  cpus?: number;
  memory?: string | number;
  disk?: string | number;
  display?: boolean;
  /**
   * The guest's network (default: defaults.network from the config, else the provider's —
   * qemu: 'none'). 'none': the guest reaches nothing but what the suite exposes
   * (vm.exposeHostPort); 'nat': outbound NAT, which under qemu includes the host's loopback.
   */
  network?: NetworkMode;
  env?: Record<string, string>;
  /** ms for clone → boot → SSH → ready (default: timeouts.ready from the config). */
  deadline?: number;
  wait?: WaitStrategy;
  /** Start this suite's VM ahead of time while the previous suite runs (default true). */
  prewarm?: boolean;
  /** Fail the suite before its first test when the guest renders in software (no Metal GPU). */
  requireGpu?: boolean;
}

/** The shape of SuiteVMOptions, checked before anything starts: a typo must not boot a VM with defaults. */
const SUITE_OPTIONS_RULE: Rule = {
  kind: 'object',
  keys: {
    ...VM_OPTION_RULES,
    image: { kind: 'string', nonEmpty: true },
    provider: { kind: 'enum', values: PROVIDER_NAMES },
    prewarm: { kind: 'boolean' },
    requireGpu: { kind: 'boolean' },
  },
};

/** Which provider a suite's VM comes from: its own option, else its image's in the config, else the config's. */
export function suiteProvider(options: Pick<SuiteVMOptions, 'provider' | 'image'>, context: RunContext): ProviderName {
  return (options.provider ?? context.images[options.image ?? context.defaults.image ?? '']?.provider ?? context.provider) as ProviderName;
}

export interface SuiteVM {
  vm: MacVM;
  /** Milliseconds spent waiting for a slot. */
  slotWaitMs: number;
  prewarmed: boolean;
  /**
   * The suite's tests start on it: its progress leaves 'ready' (where a prewarmed VM waits) for
   * 'running tests', so a two-minute suite does not read "ready 120.0s". Repeats are ignored.
   */
  inUse(): void;
  /** Disposes the VM; `failed` (a test of the suite failed) makes the progress line say so. */
  release(outcome?: { failed?: boolean }): Promise<void>;
}

/**
 * Gets a fresh VM for a suite: first a host-wide slot (macOS allows two macOS guests per
 * host; the broker enforces it across processes), then the whole ready chain. The lease
 * is released when the VM is disposed, and also when starting fails.
 */
export async function startSuiteVM(suite: string, options: SuiteVMOptions, context: RunContext, wait = true): Promise<SuiteVM | undefined> {
  assertOptions(options, SUITE_OPTIONS_RULE, `withMacVM("${suite}") options`);
  const provider = suiteProvider(options, context);
  const image = options.image ?? context.defaults.image;
  if (!image) {
    throw new MacvmError('MACVM_CONFIG_INVALID', `Suite "${suite}" names no image and the config has no defaults.image.`, {
      hint: "Pass { image: 'linux-test' } to withMacVM() or set defaults.image in macvm.config.ts.",
    });
  }
  const waitStarted = Date.now();
  const progress = (state: string, detail?: string) => reportProgress(context, { suite, state, detail });
  const lease: SlotLease | undefined = await acquireSlot({
    provider,
    limit: context.slots[provider] ?? 1,
    holder: { session: context.sessionId, suite, pid: process.pid },
    timeoutMs: wait ? context.timeouts.slot : 0,
    // A worker whose runner died stops waiting (./worker-watch.ts).
    signal: runnerGoneSignal(),
    onWait: (info) =>
      progress('waiting for slot', `${info.holders.length} in use: ${info.holders.map((h) => `${h.suite} (pid ${h.pid})`).join(', ')}${info.position > 0 ? `; ${info.position} ahead` : ''}`),
  }).catch((error: unknown) => {
    if (!wait && error instanceof MacvmError && error.code === 'MACVM_SLOT_TIMEOUT') return undefined;
    throw error;
  });
  if (!lease) return undefined;
  // The wait may have been long: never boot a VM for a runner that is gone meanwhile.
  if (runnerGoneSignal().aborted || (context.sessionPid !== process.pid && !isAlive(context.sessionPid))) {
    await lease.release();
    throw new MacvmError('MACVM_INTERRUPTED', `Suite "${suite}" got its slot after its runner (pid ${context.sessionPid}) had gone; no VM was started.`);
  }
  const slotWaitMs = Date.now() - waitStarted;
  /** Recording the VM process in the slot (set once it boots; see onBooted below). */
  let tracking: Promise<void> | undefined;
  const startOptions: StartMacVMOptions = {
    image,
    provider,
    providerSettings: providerDefinition(provider).settings({ section: context.providers[provider], images: context.images, configFile: context.configFile }),
    cpus: options.cpus ?? context.defaults.cpus,
    memory: options.memory ?? context.defaults.memory,
    disk: options.disk ?? context.defaults.disk,
    display: options.display ?? context.defaults.display,
    network: options.network ?? context.defaults.network,
    env: options.env,
    deadline: options.deadline ?? context.timeouts.ready,
    stopTimeout: context.timeouts.stop,
    wait: options.wait,
    session: { id: context.sessionId, pid: context.sessionPid },
    // 'ready' is reported below, with the time it took.
    // A restart inside a test shows its steps, then the suite is back to running its tests.
    onStep: (step) => (step === 'restart: ready' ? progress('running tests') : step !== 'ready' && progress(step)),
    // From boot on, the slot counts the VM process too: if this worker dies, the slot stays
    // taken until the reaper has stopped the VM.
    onBooted: (running) => {
      if (running.pid !== undefined) tracking = lease.trackVmProcess(running.pid);
    },
    // A VM that never became ready leaves its console log in reports/, where the error points.
    keepConsoleLog: async (log, vmId) => {
      const kept = await copyArtifact(context.reportsDir, suiteArtifactDir(context.reportsDir, suite, vmId), 'console.log', log, 'console-log', 'text/plain');
      return kept && join(context.reportsDir, kept.path);
    },
  };
  const vm = await startMacVM(startOptions).catch(async (error: unknown) => {
    await tracking?.catch(() => {});
    await lease.release();
    progress('failed');
    throw error;
  });
  try {
    await tracking;
    if (options.requireGpu) requireGpu(await vm.gpu(), suite);
  } catch (error) {
    await vm.dispose().catch(() => {});
    await lease.release();
    progress('failed');
    throw error;
  }
  progress('ready', `${(vm.facts.readyMs / 1000).toFixed(1)}s`);
  vm.onStopped(() => lease.release());
  return {
    vm,
    slotWaitMs,
    prewarmed: false,
    inUse: () => progress('running tests'),
    release: async (outcome) => {
      progress('tearing down');
      await vm.dispose();
      reportProgress(context, { suite, state: 'done', ok: !outcome?.failed });
    },
  };
}

