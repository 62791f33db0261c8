import type { GuestSession, HostForwardOptions, PortForward } from '../guest/types.js';

/**
 * Port forwards that outlast a restart. A forward runs over one SSH session, and vm.restart()
 * ends that session; a spec still holds the host port forwardGuestPort gave it and the guest
 * port exposeHostPort gave it (often baked into a URL). So each forward is remembered with
 * what made it, closed before the old session goes, and opened again on the new one at the
 * same port — the host listener rebinds its port, the guest listens on its port again.
 */
export class LastingForwards {
  private readonly open = new Set<Lasting>();

  /** A guest port on 127.0.0.1:<port> of the host; the object handed back keeps its port across restarts. */
  async guestPort(session: GuestSession, guestPort: number, options: { guestHost?: string; localPort?: number } = {}): Promise<PortForward> {
    const inner = await session.forwardGuestPort(guestPort, options);
    const lasting: Lasting = { inner, reopen: (next) => next.forwardGuestPort(guestPort, { ...options, localPort: inner.port }) };
    return this.keep(lasting);
  }

  /** A host port, reachable in the guest at the port handed back, which a restart keeps. */
  async hostPort(session: GuestSession, hostPort: number, options: HostForwardOptions = {}): Promise<PortForward> {
    const inner = await session.forwardHostPort(hostPort, options);
    const lasting: Lasting = { inner, reopen: (next) => next.forwardHostPort(hostPort, { ...options, guestPort: inner.port }) };
    return this.keep(lasting);
  }

  /** Closes every forward's current connection side; they stay remembered for reopen(). */
  async suspend(): Promise<void> {
    await Promise.all([...this.open].map((lasting) => lasting.inner.close().catch(() => {})));
  }

  /**
   * Opens every remembered forward again on `session`, at its old port. All are tried; the
   * first failure (another process took the port meanwhile) is thrown after the rest are open.
   */
  async reopen(session: GuestSession): Promise<void> {
    let failure: unknown;
    for (const lasting of this.open) {
      try {
        const inner = await lasting.reopen(session);
        // Closed by its owner while it was being opened again: it stays closed.
        if (this.open.has(lasting)) lasting.inner = inner;
        else await inner.close();
      } catch (error) {
        failure ??= error;
      }
    }
    if (failure !== undefined) throw failure;
  }

  private keep(lasting: Lasting): PortForward {
    this.open.add(lasting);
    let closing: Promise<void> | undefined;
    return {
      port: lasting.inner.port,
      close: () => {
        closing ??= (async () => {
          this.open.delete(lasting);
          await lasting.inner.close();
        })();
        return closing;
      },
    };
  }
}

interface Lasting {
  /** The forward over the current session. */
  inner: PortForward;
  /** The same forward over another session, at the same port. */
  reopen(session: GuestSession): Promise<PortForward>;
}
