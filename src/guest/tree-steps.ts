/**
 * The steps of one directory-tree transfer, several at a time on one SFTP channel. Each file is
 * a few round trips (open, write, close, chmod) to a guest that may be slow (TCG), so one file
 * at a time left the channel idle most of the time: 300 small files took 5.5 s to linux-test.
 *
 * Only file-sized steps take a slot; directories are walked outside them, so a directory
 * waiting for its children never holds one. The first failure stops steps that have not
 * started; the walk settles everything in flight, and then check() throws that failure, so
 * the error still names the one file that failed and nothing runs on behind the caller's back.
 */
export class TreeSteps {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  private failure: { error: unknown } | undefined;

  constructor(private readonly limit: number) {}

  get failed(): boolean {
    return this.failure !== undefined;
  }

  /** Runs `work` when a slot is free, unless the transfer failed meanwhile. Never rejects. */
  async step(work: () => Promise<void>): Promise<void> {
    if (this.active < this.limit) this.active++;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      if (!this.failure) await work();
    } catch (error) {
      this.fail(error);
    } finally {
      // The slot goes straight to the next waiter.
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }

  /** Runs a directory's own operation (no slot); a failure is kept like a step's. */
  async direct(work: () => Promise<void>): Promise<void> {
    if (this.failure) return;
    try {
      await work();
    } catch (error) {
      this.fail(error);
    }
  }

  fail(error: unknown): void {
    this.failure ??= { error };
  }

  /** Throws the first failure, once everything has settled. */
  check(): void {
    if (this.failure) throw this.failure.error;
  }
}
