/**
 * Progress of a pull or push as the CLI shows it: the phase, bytes done of the total (compressed
 * bytes that actually cross the network), the rate over the last few seconds and the ETA.
 */
export type TransferPhase = 'resolve' | 'wait' | 'download' | 'verify' | 'install' | 'upload' | 'done';

export interface TransferProgress {
  phase: TransferPhase;
  doneBytes: number;
  totalBytes: number;
  /** Over the last RATE_WINDOW_MS; 0 until there are two samples. */
  bytesPerSecond: number;
  /** Seconds left at the current rate; undefined while the rate is unknown. */
  etaSeconds?: number;
  /** What the phase is doing, for people: "waiting for pid 123 pulling the same image". */
  detail?: string;
}

const RATE_WINDOW_MS = 5000;

export class ProgressMeter {
  private current: TransferPhase = 'resolve';
  private done = 0;
  private total = 0;
  private lastEmit = 0;
  private readonly samples: Array<{ at: number; done: number }> = [];

  constructor(
    private readonly onProgress?: (progress: TransferProgress) => void,
    private readonly intervalMs = 250,
  ) {}

  phase(phase: TransferPhase, options: { totalBytes?: number; detail?: string } = {}): void {
    this.current = phase;
    if (options.totalBytes !== undefined) {
      this.total = options.totalBytes;
      this.done = 0;
      this.samples.length = 0;
    }
    this.emit(options.detail);
  }

  add(bytes: number): void {
    this.done += bytes;
    const now = Date.now();
    if (now - this.lastEmit >= this.intervalMs) this.emit();
  }

  /** More to transfer than planned (a piece that could not be copied after all). */
  grow(bytes: number): void {
    this.total += bytes;
  }

  get doneBytes(): number {
    return this.done;
  }

  private emit(detail?: string): void {
    if (!this.onProgress) return;
    const now = Date.now();
    this.lastEmit = now;
    this.samples.push({ at: now, done: this.done });
    while (this.samples.length > 2 && now - this.samples[0]!.at > RATE_WINDOW_MS) this.samples.shift();
    const first = this.samples[0]!;
    const seconds = (now - first.at) / 1000;
    const bytesPerSecond = seconds > 0 ? (this.done - first.done) / seconds : 0;
    const left = Math.max(0, this.total - this.done);
    const progress: TransferProgress = { phase: this.current, doneBytes: this.done, totalBytes: this.total, bytesPerSecond };
    if (bytesPerSecond > 0) progress.etaSeconds = left / bytesPerSecond;
    if (detail) progress.detail = detail;
    try {
      this.onProgress(progress);
    } catch {
      // A broken progress printer must not break the pull.
    }
  }
}
