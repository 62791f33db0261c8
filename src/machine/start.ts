import { MacvmError, messageOf } from '../errors.js';
import { parseSize } from '../util/size.js';
import { assertOptions, type Rule } from '../util/validate.js';
import { consoleTail } from '../vm/console-tail.js';
import { DEFAULTS } from '../vm/defaults.js';
import { Deadline } from '../shared/deadline.js';
import { isRegistryReference } from '../oci/reference.js';
import { MacVM, type Restarter } from './macvm.js';
import { defaultProviderName, loadProvider } from '../vm/registry.js';
import { currentSession } from '../vm/session.js';
import { NETWORK_MODES, type BootOptions, type Clone, type Image, type NetworkMode, type Provider, type ProviderName, type RunningVM, type SessionInfo } from '../vm/types.js';
import { forSsh, type WaitStrategy } from './wait.js';
import { bootUntilReady } from './ready-chain.js';

export interface StartMacVMOptions {
  /** Image name, e.g. 'linux-test' or 'sonoma-xcode'. */
  image: string;
  provider?: ProviderName | Provider;
  /** Settings for providers that need them (ssh: host, user, hostKey...). */
  providerSettings?: Record<string, unknown>;
  cpus?: number;
  /** '8GiB', '512MiB', or MiB as a number. */
  memory?: string | number;
  /** Disk size for the clone ('64GiB'); the clone grows past the base when larger. */
  disk?: string | number;
  /** Attach a display (needed for host-side screenshots on qemu). */
  display?: boolean;
  /**
   * The guest's network: 'none' (qemu's default) reaches nothing but what the spec exposes
   * (exposeHostPort); 'nat' is outbound NAT, which under qemu includes the host's loopback
   * (10.0.2.2). Providers with a fixed network (vz, tart, ssh, orchard) refuse it.
   */
  network?: NetworkMode;
  /** One deadline, in ms, for clone → boot → address → SSH → ready. */
  deadline?: number;
  wait?: WaitStrategy;
  /** Environment for every command run through the MacVM. */
  env?: Record<string, string>;
  session?: SessionInfo;
  /** Keep the VM running after this process exits (`macvm vm start`). */
  detached?: boolean;
  /** Graceful power-down time on dispose, ms. */
  stopTimeout?: number;
  /**
   * Called as the chain enters each step (progress lines); a vm.restart() runs the chain again
   * and reports its steps as `restart: <step>`, ending with `restart: ready`.
   */
  onStep?: (step: string, elapsedMs: number) => void;
  /** Called once the VM process runs, before address and SSH (benchmarks watch its console from here); again after each vm.restart() boots it. */
  onBooted?: (vm: RunningVM) => void;
  /**
   * Called when the chain fails, before the clone (and its console log) is destroyed, with
   * the log's path: returns where a copy was kept, which the error then names. The runner
   * keeps it under reports/artifacts/.
   */
  keepConsoleLog?: (consoleLogPath: string, vmId: string) => Promise<string | undefined>;
}

export const DEFAULT_DEADLINE_MS = DEFAULTS.readyTimeoutMs;

/** The VM's own options, the same wherever a VM is asked for (startMacVM, withMacVM, macvmTest). */
export const VM_OPTION_RULES = {
  cpus: { kind: 'integer', min: 1 },
  memory: { kind: 'size' },
  disk: { kind: 'size' },
  display: { kind: 'boolean' },
  deadline: { kind: 'integer', min: 1 },
  wait: { kind: 'any' },
  env: { kind: 'record', value: { kind: 'string' } },
  network: { kind: 'enum', values: ['nat', 'none'] },
} satisfies Record<string, Rule>;

/** What startMacVM accepts, checked before anything starts (hooks and objects are only type-checked). */
const START_OPTIONS_RULE: Rule = {
  kind: 'object',
  required: ['image'],
  keys: {
    ...VM_OPTION_RULES,
    // May be empty: the ssh provider then labels the machine user@host:port.
    image: { kind: 'string' },
    provider: { kind: 'any' },
    providerSettings: { kind: 'any' },
    session: { kind: 'any' },
    detached: { kind: 'boolean' },
    stopTimeout: { kind: 'integer', min: 0 },
    onStep: { kind: 'function' },
    onBooted: { kind: 'function' },
    keepConsoleLog: { kind: 'function' },
  },
};

/**
 * The whole ready chain under ONE deadline. Whatever fails — a step that hangs, a VM that
 * crashes during boot, a wait strategy that never passes — the clone is destroyed before
 * the error is thrown, and the error names the step and carries the console tail.
 */
export async function startMacVM(options: StartMacVMOptions): Promise<MacVM> {
  assertOptions(options, START_OPTIONS_RULE, 'startMacVM options');
  let deadline = new Deadline(options.deadline ?? DEFAULT_DEADLINE_MS);
  const step = (name: string) => {
    deadline.enter(name);
    options.onStep?.(name, deadline.elapsedMs());
  };
  const cpus = options.cpus ?? DEFAULTS.cpus;
  const memoryMiB = parseSize(options.memory ?? DEFAULTS.memoryMiB, 'memory');
  const diskGiB = options.disk === undefined ? undefined : Math.ceil(parseSize(options.disk, 'disk') / 1024);
  const display = options.display ?? false;
  const network = options.network;
  if (network !== undefined && !(NETWORK_MODES as readonly unknown[]).includes(network)) {
    throw new MacvmError('MACVM_BAD_ARGUMENT', `network must be one of ${NETWORK_MODES.map((m) => `'${m}'`).join(', ')}, got ${JSON.stringify(network)}.`);
  }

  let clone: Clone | undefined;
  let running: RunningVM | undefined;
  try {
    step('load provider');
    const provider = typeof options.provider === 'object' ? options.provider : await loadProvider(options.provider ?? defaultProviderName(), { detached: options.detached, settings: options.providerSettings });
    if (network !== undefined && !provider.networkModes?.includes(network)) {
      throw new MacvmError('MACVM_NOT_SUPPORTED', `The ${provider.name} provider cannot give a guest network '${network}'${provider.networkModes ? ` (it offers ${provider.networkModes.join(', ')})` : ': its network is fixed'}.`, {
        hint: 'Leave `network` unset for this provider (withMacVM options or defaults.network in macvm.config.ts).',
      });
    }
    // A registry image not yet in the cache is pulled here, once: minutes for a macOS image,
    // so it is not charged to the ready deadline, which starts again after it.
    const pulls = isRegistryReference(options.image);
    step(pulls ? 'pull image' : 'prepare image');
    const image = pulls ? await provider.prepare(options.image) : await deadline.run('prepare image', () => provider.prepare(options.image));
    if (pulls) {
      deadline.finish();
      deadline = new Deadline(options.deadline ?? DEFAULT_DEADLINE_MS);
      deadline.enter('pull image');
    }
    step('clone');
    clone = await deadline.run('clone', () => provider.clone(image, { session: options.session ?? currentSession(), diskGiB, deadline }));
    const boot = { cpus, memoryMiB, display, network };
    const strategy = options.wait ?? forSsh();
    const ready = await bootUntilReady(clone, image, boot, strategy, deadline, {
      step,
      onBooted: (booted) => {
        running = booted;
        options.onBooted?.(booted);
      },
    });
    step('ready');
    const restart = clone.bootsAgain ? restarter(clone, image, boot, strategy, options) : undefined;
    return new MacVM(
      {
        id: clone.id,
        provider: provider.name,
        image: image.name,
        os: image.os,
        arch: image.arch,
        cpus,
        memoryMiB,
        display,
        bootMs: ready.bootMs,
        readyMs: ready.readyMs,
        imageFacts: image.facts,
      },
      ready.session,
      ready.running,
      clone,
      { env: options.env, stopTimeoutMs: options.stopTimeout, restart, restartRefusal: clone.bootsAgainRefusal },
    );
  } catch (error) {
    const tail = await consoleTail(running?.consoleLogPath, 20);
    const kept = running?.consoleLogPath && clone ? await options.keepConsoleLog?.(running.consoleLogPath, clone.id).catch(() => undefined) : undefined;
    await clone?.destroy().catch(() => {});
    throw enrich(error, deadline, tail, kept);
  } finally {
    deadline.finish();
  }
}

/** vm.restart(): the same ready chain on the same clone, under a deadline of its own, its steps reported as `restart: <step>`. */
function restarter(clone: Clone, image: Image, boot: Omit<BootOptions, 'deadline'>, strategy: WaitStrategy, options: StartMacVMOptions): Restarter {
  return {
    stopping: () => options.onStep?.('restart: stop', 0),
    async boot(deadlineMs, onBooted) {
      const deadline = new Deadline(deadlineMs ?? options.deadline ?? DEFAULT_DEADLINE_MS);
      let rebooted: RunningVM | undefined;
      try {
        const ready = await bootUntilReady(clone, image, boot, strategy, deadline, {
          step: (name) => {
            deadline.enter(name);
            options.onStep?.(`restart: ${name}`, deadline.elapsedMs());
          },
          onBooted: (vm) => {
            rebooted = vm;
            onBooted(vm);
            options.onBooted?.(vm);
          },
        });
        options.onStep?.('restart: ready', deadline.elapsedMs());
        return ready;
      } catch (error) {
        throw enrich(error, deadline, await consoleTail(rebooted?.consoleLogPath, 20), undefined);
      } finally {
        deadline.finish();
      }
    },
  };
}

function enrich(error: unknown, deadline: Deadline, tail: string, consoleLog: string | undefined): unknown {
  if (error instanceof MacvmError && error.code === 'MACVM_DEADLINE_EXCEEDED') {
    return deadline.error({ consoleTail: tail, consoleLog });
  }
  if (error instanceof MacvmError) {
    if (tail && !error.details.consoleTail) error.details.consoleTail = tail;
    // The message carries the tail itself (the CLI prints the message; crash errors promise it).
    const shown = typeof error.details.consoleTail === 'string' ? error.details.consoleTail.trim() : '';
    if (shown && !error.message.includes(shown)) error.message += `\nLast console lines:\n${shown.split('\n').map((line) => `    ${line}`).join('\n')}`;
    else if (!shown && /console tail below/.test(error.message)) error.message += '\nLast console lines: none (the guest printed nothing).';
    if (consoleLog) {
      error.details.consoleLog = consoleLog;
      error.message += `\n  console log: ${consoleLog}`;
    }
    error.details.step ??= deadline.step;
    return error;
  }
  return new MacvmError('MACVM_BOOT_FAILED', `Starting the VM failed at step "${deadline.step}": ${messageOf(error)}`, {
    cause: error,
    hint: consoleLog ? `The guest's console log is kept at ${consoleLog}.` : undefined,
    details: { step: deadline.step, consoleTail: tail, ...(consoleLog ? { consoleLog } : {}) },
  });
}
