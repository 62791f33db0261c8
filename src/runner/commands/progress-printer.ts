/**
 * Progress for long CLI work (image builds, downloads): one line per step, with a
 * percentage redrawn in place on a terminal; plain lines when piped; nothing in --json.
 */
export interface ProgressEvent {
  step: string;
  detail?: string;
  fraction?: number;
}

export function progressPrinter(stream: NodeJS.WritableStream & { isTTY?: boolean }, options: { quiet?: boolean } = {}) {
  const tty = Boolean(stream.isTTY) && !process.env.CI;
  let lastStep = '';
  let lastPercent = -1;
  const started = Date.now();
  return {
    update(event: ProgressEvent): void {
      if (options.quiet) return;
      const seconds = ((Date.now() - started) / 1000).toFixed(1).padStart(5);
      const percent = event.fraction === undefined ? undefined : Math.floor(event.fraction * 100);
      const line = `  ${seconds}s  ${event.step}${event.detail ? ` — ${event.detail}` : ''}${percent === undefined ? '' : ` ${percent}%`}`;
      if (tty) {
        stream.write(`${event.step === lastStep ? '\r\x1b[K' : lastStep ? '\n' : ''}${line}`);
      } else if (event.step !== lastStep || (percent !== undefined && percent >= lastPercent + 25)) {
        stream.write(`${line}\n`);
      } else {
        return;
      }
      lastStep = event.step;
      lastPercent = percent ?? -1;
    },
    done(): void {
      if (tty && lastStep && !options.quiet) stream.write('\n');
    },
  };
}
