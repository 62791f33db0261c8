import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { GuestArch } from '../types.js';
import { PROBE_MARKER, x86ProbeBootSector } from './accel-payload.js';

/** aarch64 has no probe guest yet: there the proof is weaker, qemu running this long without an error. */
const SURVIVE_MS = 1_000;

/** One run of the probe guest under one accelerator and CPU model. */
export interface ProbeAttempt {
  accel: string;
  cpu: string;
  ok: boolean;
  /** Spawn to marker (ok) or to the failure. */
  ms: number;
  /** Why it failed: qemu's own last words, or that the guest printed nothing in time. */
  reason?: string;
}

export interface ProbeRun {
  binary: string;
  arch: GuestArch;
  accel: string;
  cpu: string;
  timeoutMs: number;
}

/**
 * Boots the probe boot sector (accel-payload.ts) and waits for its marker on the serial
 * port, which is qemu's stdout here. The machine is `pc`: SeaBIOS boots a one-sector disk
 * from its IDE controller (on q35's AHCI it refuses a disk that small), and the question
 * asked is about the accelerator and the CPU model, not the chipset.
 */
export async function runProbe(run: ProbeRun): Promise<ProbeAttempt> {
  const dir = await mkdtemp(join(tmpdir(), 'macvm-accel-probe-'));
  const disk = join(dir, 'probe.img');
  await writeFile(disk, x86ProbeBootSector());
  const common = ['-nodefaults', '-no-user-config', '-display', 'none', '-accel', run.accel, '-cpu', run.cpu];
  const x86 = run.arch === 'x86_64';
  const args = x86
    ? [
        ...common, '-M', 'pc', '-m', '16',
        '-chardev', 'stdio,id=serial0,signal=off', '-serial', 'chardev:serial0',
        // snapshot=on: qemu writes nothing back to the probe disk.
        '-drive', `file=${disk},format=raw,if=ide,snapshot=on`,
      ]
    : [...common, '-M', 'virt', '-m', '64'];
  const started = performance.now();
  try {
    return await new Promise<ProbeAttempt>((resolve) => {
      // cwd: the temp dir, so a core file from qemu aborting (as it does on some nested hosts) goes with it.
      const child = spawn(run.binary, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      let serial = '';
      let errors = '';
      let done = false;
      const finish = (ok: boolean, reason?: string) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        child.kill('SIGKILL');
        resolve({ accel: run.accel, cpu: run.cpu, ok, ms: Math.round(performance.now() - started), ...(reason ? { reason } : {}) });
      };
      const silent = () => `the guest printed nothing in ${run.timeoutMs} ms under ${run.accel} (cpu ${run.cpu})${lastLines(errors) ? `; qemu said: ${lastLines(errors)}` : ''}`;
      const timer = setTimeout(() => (x86 ? finish(false, silent()) : finish(true)), x86 ? run.timeoutMs : SURVIVE_MS);
      child.stdout.on('data', (chunk: Buffer) => {
        serial += chunk.toString('latin1');
        if (serial.includes(PROBE_MARKER)) finish(true);
      });
      child.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
      child.on('error', (error) => finish(false, `${run.binary} could not be started: ${error.message}`));
      // 'close', not 'exit': only then have stdout (the marker) and stderr (qemu's last words) been read to the end.
      child.on('close', (code, signal) => finish(false, lastLines(errors) || `qemu exited (${signal ?? `code ${code}`}) before the guest ran`));
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** qemu's own error line ("error: failed to set MSR 0x10a to 0x69"), else its last line. */
function lastLines(text: string): string {
  const lines = text
    .trim()
    .split('\n')
    .map((line) => line.trim().replace(/^qemu-system-[\w]+: /, ''))
    .filter((line) => line && !/^terminating on signal/.test(line));
  return lines.find((line) => /\berror\b/i.test(line)) ?? lines.at(-1) ?? '';
}
