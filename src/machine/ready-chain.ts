import { MacvmError } from '../errors.js';
import { connectGuest } from '../guest/session.js';
import type { GuestSession } from '../guest/types.js';
import type { Deadline } from '../shared/deadline.js';
import type { BootOptions, Clone, ExitInfo, Image, RunningVM } from '../vm/types.js';
import type { WaitStrategy } from './wait.js';

/** What a ready chain gives back: the VM process, the session into it, and when each came. */
export interface ReadyVM {
  running: RunningVM;
  session: GuestSession;
  /** ms on the deadline's clock until the VM process ran. */
  bootMs: number;
  /** ms on the deadline's clock until the wait strategy passed. */
  readyMs: number;
}

export interface ReadyChainHooks {
  /** Called as the chain enters each step (the deadline has entered it already). */
  step(name: string): void;
  /** Called once the VM process runs, before address and SSH. */
  onBooted?(vm: RunningVM): void;
}

/**
 * boot → address → ssh → wait, under `deadline`: what startMacVM runs after the clone, and
 * vm.restart() runs again on the same clone. A VM process that exits on the way fails the
 * chain at once, not at the deadline. On failure the session (if any) is closed; the VM
 * process is the caller's to stop — it is `booted` in the hooks, and the clone knows it.
 */
export async function bootUntilReady(clone: Clone, image: Image, boot: Omit<BootOptions, 'deadline'>, strategy: WaitStrategy, deadline: Deadline, hooks: ReadyChainHooks): Promise<ReadyVM> {
  hooks.step('boot');
  // A boot the deadline gives up on stops what it started itself: each provider's boot watches the deadline's signal.
  const running = await deadline.run('boot', () => clone.boot({ ...boot, deadline }));
  hooks.onBooted?.(running);
  const bootMs = deadline.elapsedMs();
  const crashed = crashWatch(running);
  try {
    hooks.step('address');
    const endpoint = await raceCrash(crashed.promise, deadline.run('address', () => running.endpoint(deadline)));
    hooks.step('ssh');
    const session = await raceCrash(
      crashed.promise,
      deadline.run('ssh', () => connectGuest({ host: endpoint.host, port: endpoint.port, credentials: image.ssh, insecureAcceptAnyHostKey: image.ssh.insecureAcceptAnyHostKey, deadline })),
    );
    hooks.step(`wait: ${strategy.description}`);
    try {
      await raceCrash(crashed.promise, deadline.run(`wait: ${strategy.description}`, () => strategy.wait({ vm: running, session, deadline })));
    } catch (error) {
      await session.close().catch(() => {});
      throw error;
    }
    return { running, session, bootMs, readyMs: deadline.elapsedMs() };
  } finally {
    crashed.cancel();
  }
}

/** Turns an unexpected VM exit during the chain into an immediate, explained failure. */
function crashWatch(vm: RunningVM): { promise: Promise<never>; cancel: () => void } {
  let cancelled = false;
  const promise = vm.exited.then((exit: ExitInfo) => {
    if (cancelled) return new Promise<never>(() => {});
    throw new MacvmError('MACVM_BOOT_FAILED', `The VM process exited during start-up (code ${exit.code}, signal ${exit.signal}).`, {
      hint: 'The console tail below shows how far the guest got.',
    });
  });
  promise.catch(() => {});
  return { promise, cancel: () => (cancelled = true) };
}

function raceCrash<T>(crash: Promise<never>, work: Promise<T>): Promise<T> {
  return Promise.race([work, crash]);
}
