/**
 * The VM lifecycle through the real qemu provider, side by side in one run:
 * - clone time for a 1 GiB and a 64 GiB base (qcow2 overlay: should not grow with size);
 * - boot-to-ready (startMacVM: clone → boot → SSH → forSsh) for linux-test;
 * - readiness lag: when startMacVM said ready minus when the guest printed that sshd
 *   listens (the console marker, seen by watching the console file from the host).
 * LIFECYCLE_BOOTS sets the boots (default 5), LIFECYCLE_CLONES the clones per base (default 20).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { summarize } from '../src/bench/stats.js';
import { macvmHome } from '../src/vm/home.js';
import { chooseAccelerator } from '../src/vm/qemu/accel.js';
import { qemuBinary } from '../src/vm/qemu/args.js';
import { resolveQemuSettings } from '../src/vm/qemu/settings.js';
import { createOverlay } from '../src/vm/qemu/qemu-img.js';
import { startMacVM } from '../src/machine/start.js';

export async function run(): Promise<void> {
  await cloneTimes(Number(process.env.LIFECYCLE_CLONES ?? 20));
  await bootTimes(Number(process.env.LIFECYCLE_BOOTS ?? 5));
}

async function cloneTimes(clones: number): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'macvm-bench-clone-'));
  try {
    const sizes = { '1 GiB': '1G', '64 GiB': '64G' } as const;
    const samples: Record<string, number[]> = { '1 GiB': [], '64 GiB': [] };
    for (const size of Object.values(sizes)) {
      const base = join(dir, `base-${size}.qcow2`);
      await execa('qemu-img', ['create', '-q', '-f', 'qcow2', base, size]);
      // Some real data in the base, so the overlay has something to point at.
      await execa('qemu-io', ['-c', 'write -P 0xab 0 64M', base]);
    }
    // Interleaved, so drift on a busy host hits both sizes alike.
    for (let i = 0; i < clones; i++) {
      for (const [label, size] of Object.entries(sizes)) {
        const overlay = join(dir, `clone-${size}-${i}.qcow2`);
        const started = performance.now();
        await createOverlay(join(dir, `base-${size}.qcow2`), overlay);
        samples[label]!.push(performance.now() - started);
        await rm(overlay);
      }
    }
    const small = summarize(samples['1 GiB']!);
    const large = summarize(samples['64 GiB']!);
    console.log(`clone (qcow2 overlay), ${clones} each, median [95% CI] ms`);
    console.log(`  1 GiB base   ${fmt(small.medianMs)} [${fmt(small.ciLowMs)}–${fmt(small.ciHighMs)}]`);
    console.log(`  64 GiB base  ${fmt(large.medianMs)} [${fmt(large.ciLowMs)}–${fmt(large.ciHighMs)}]`);
    console.log(`  ratio 64 GiB / 1 GiB: ${(large.medianMs / small.medianMs).toFixed(2)}×`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function bootTimes(boots: number): Promise<void> {
  const ready: number[] = [];
  const lag: number[] = [];
  const marker: number[] = [];
  for (let i = 0; i < boots; i++) {
    const started = performance.now();
    let markerAt: number | undefined;
    let watching = true;
    const vm = await startMacVM({
      image: 'linux-test',
      provider: 'qemu',
      cpus: 1,
      memory: '256MiB',
      onBooted: (running) => {
        // Poll the console file closely: the moment the marker appears, in host time.
        void (async () => {
          while (watching && markerAt === undefined) {
            const text = await readFile(running.consoleLogPath!, 'utf8').catch(() => '');
            if (text.includes('MACVM-READY')) markerAt = performance.now();
            else await new Promise((r) => setTimeout(r, 5));
          }
        })();
      },
    });
    const readyAt = performance.now();
    watching = false;
    await vm.dispose();
    ready.push(readyAt - started);
    if (markerAt !== undefined) {
      marker.push(markerAt - started);
      lag.push(readyAt - markerAt);
    }
  }
  const r = summarize(ready);
  const settings = resolveQemuSettings(undefined);
  const { accel } = await chooseAccelerator({ guestArch: 'x86_64', requested: settings.accelerator, binary: qemuBinary('x86_64', settings.binary), home: macvmHome() });
  console.log(`boot-to-ready (linux-test, qemu/${accel}, 1 vCPU, 256 MiB), ${boots} boots, median [95% CI] s`);
  console.log(`  start → ready (startMacVM)      ${sec(r.medianMs)} [${sec(r.ciLowMs)}–${sec(r.ciHighMs)}]`);
  if (marker.length) {
    const m = summarize(marker);
    const l = summarize(lag);
    console.log(`  start → guest sshd listening    ${sec(m.medianMs)} [${sec(m.ciLowMs)}–${sec(m.ciHighMs)}]`);
    console.log(`  readiness lag (ready − marker)  ${fmt(l.medianMs)} ms [${fmt(l.ciLowMs)}–${fmt(l.ciHighMs)}]`);
  }
}

const fmt = (ms: number) => ms.toFixed(1);
const sec = (ms: number) => (ms / 1000).toFixed(2);
