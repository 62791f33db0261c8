/**
 * Session channels a connection may hold at once. OpenSSH allows 10 (MaxSessions);
 * SFTP takes one, and a margin stays for wait strategies, so extra commands queue
 * here instead of failing with "open failed".
 */
const MAX_CONCURRENT_COMMANDS = 8;

/** A first-come, first-served limit on the commands one connection runs at once. */
export class CommandSlots {
  private running = 0;
  private readonly queue: Array<() => void> = [];

  constructor(private readonly limit = MAX_CONCURRENT_COMMANDS) {}

  async acquire(): Promise<void> {
    if (this.running < this.limit) {
      this.running++;
      return;
    }
    await new Promise<void>((resolve) => this.queue.push(resolve));
  }

  /** Hands the slot straight to the next waiter, so a newcomer cannot overtake the queue. */
  release(): void {
    const next = this.queue.shift();
    if (next) next();
    else this.running--;
  }
}
