/**
 * The VM lifecycle through the real qemu provider, side by side in one run:
 * - clone time for a 1 GiB and a 64 GiB base (qcow2 overlay: should not grow with size);
 * - boot-to-ready (startMacVM: clone → boot → SSH → forSsh) for linux-test;
 * - readiness lag: when startMacVM said ready minus when the guest printed that sshd
 *   listens (the console marker, seen by watching the console file from the host), beside
 *   the floor it is held to: one full SSH connect (TCP + handshake + auth) to the same guest
 *   once it runs, measured right after each boot (so load drifts hit both alike).
 * LIFECYCLE_BOOTS sets the boots (default 5), LIFECYCLE_HANDSHAKES the connects per boot
 * (default 3), LIFECYCLE_CLONES the clones per base (default 20; 0 skips them),
 * LIFECYCLE_IMAGES the images booted in turn (default linux-test). Where the VM has a vCPU
 * clock (qemu on Linux), each connect's guest CPU time is printed too: the vCPU's run time as
 * the host counts it, which a loaded host does not stretch as it stretches wall time.
 */
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { summarize } from '../src/bench/stats.js';
import { macvmHome } from '../src/vm/home.js';
import { chooseAccelerator } from '../src/vm/qemu/accel.js';
import { qemuBinary } from '../src/vm/qemu/args.js';
import { resolveQemuSettings } from '../src/vm/qemu/settings.js';
import { createOverlay } from '../src/vm/qemu/qemu-img.js';
import { startMacVM } from '../src/machine/start.js';
import { connectGuest } from '../src/guest/session.js';
import { loadProvider } from '../src/vm/registry.js';
import type { Image, RunningVM } from '../src/vm/types.js';
import type { VcpuTimes } from '../src/shared/cpu-clock.js';
import { Deadline } from '../src/shared/deadline.js';

export async function run(): Promise<void> {
  const clones = Number(process.env.LIFECYCLE_CLONES ?? 20);
  if (clones > 0) await cloneTimes(clones);
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

interface ImageFigures {
  ready: number[];
  lag: number[];
  marker: number[];
  handshake: number[];
  /** Per boot: its lag minus the median handshake to that same guest once it runs (paired). */
  excess: number[];
  /** Where the lag goes: marker → endpoint handed out, → SSH authenticated, → wait strategy done. */
  toAddress: number[];
  toSsh: number[];
  inWait: number[];
  /** Guest CPU (the vCPU's run time as the host counts it, steal excluded) of the chain's first connect, and of each later one. */
  firstConnectCpu: number[];
  laterConnectCpu: number[];
}

async function bootTimes(boots: number): Promise<void> {
  const handshakesPerBoot = Number(process.env.LIFECYCLE_HANDSHAKES ?? 3);
  // Several images side by side (e.g. LIFECYCLE_IMAGES=linux-test,linux-test-cold to compare
  // two builds of the guest), booted in turn so load drifts hit them alike.
  const images = (process.env.LIFECYCLE_IMAGES ?? 'linux-test').split(',').map((name) => name.trim()).filter(Boolean);
  const provider = await loadProvider('qemu');
  const figures = new Map<string, ImageFigures>();
  const prepared = new Map<string, Image>();
  for (const name of images) prepared.set(name, await provider.prepare(name));
  const loadBefore = loadavg()[0]!;
  for (let i = 0; i < boots; i++) {
    for (const name of images) {
      const image = prepared.get(name)!;
      const f = figures.get(name) ?? { ready: [], lag: [], marker: [], handshake: [], excess: [], toAddress: [], toSsh: [], inWait: [], firstConnectCpu: [], laterConnectCpu: [] };
      figures.set(name, f);
      await oneBoot(name, image, handshakesPerBoot, f);
    }
  }
  const loadAfter = loadavg()[0]!;
  const settings = resolveQemuSettings(undefined);
  const { accel } = await chooseAccelerator({ guestArch: 'x86_64', requested: settings.accelerator, binary: qemuBinary('x86_64', settings.binary), home: macvmHome() });
  for (const [name, f] of figures) {
    const r = summarize(f.ready);
    console.log(`boot-to-ready (${name}, qemu/${accel}, 1 vCPU, 256 MiB), ${boots} boots, median [95% CI] s`);
    console.log(`  start → ready (startMacVM)      ${sec(r.medianMs)} [${sec(r.ciLowMs)}–${sec(r.ciHighMs)}]`);
    if (f.marker.length) {
      const m = summarize(f.marker);
      console.log(`  start → guest sshd listening    ${sec(m.medianMs)} [${sec(m.ciLowMs)}–${sec(m.ciHighMs)}]`);
      console.log(`readiness against the handshake floor, same run, median [95% CI] ms`);
      console.log(`  readiness lag (ready − marker)             ${ms(summarize(f.lag))}  (n=${f.lag.length})`);
      console.log(`  SSH connect+auth to the running guest      ${ms(summarize(f.handshake))}  (n=${f.handshake.length}, ${handshakesPerBoot} per boot)`);
      console.log(`  lag − handshake (paired per boot)          ${ms(summarize(f.excess))}  target ≤ 30 ms`);
      if (f.toAddress.length) {
        console.log(`  where the lag goes: marker → endpoint ${fmt(median(f.toAddress))}, endpoint → authenticated ${fmt(median(f.toSsh))}, wait strategy ${fmt(median(f.inWait))}`);
        // The ready chain's first connect is to a guest that has never served one (colder than the
        // floor's, which follow it): what the chain adds beyond its own connect is the overhead.
        console.log(`  lag − the chain's own first connect        ${ms(summarize(f.lag.map((l, k) => l - f.toSsh[k]!)))}  (polling and sequencing)`);
      }
      if (f.firstConnectCpu.length) {
        console.log(`  guest CPU per connect (vCPU run time, host-counted): the chain's first ${ms(summarize(f.firstConnectCpu))}, later ones ${ms(summarize(f.laterConnectCpu))}`);
      }
    }
  }
  console.log(`  (issue #14, idle host: lag 242 ms [239–261], connect 88 ms from \`bench guest-session\`)`);
  console.log(`  host load (1 min): ${loadBefore.toFixed(1)} before, ${loadAfter.toFixed(1)} after, on ${cpus().length} CPUs`);
}

async function oneBoot(name: string, image: Image, handshakesPerBoot: number, f: ImageFigures): Promise<void> {
  const started = performance.now();
  let markerAt: number | undefined;
  let watching = true;
  let running: RunningVM | undefined;
  let stopWatch: FSWatcher | undefined;
  let poll: NodeJS.Timeout | undefined;
  let cpuAtMarker: Promise<VcpuTimes | undefined> | undefined;
  const stepAt = new Map<string, number>();
  const vm = await startMacVM({
    image: name,
    provider: 'qemu',
    cpus: 1,
    memory: '256MiB',
    onStep: (step) => stepAt.set(step.startsWith('wait:') ? 'wait' : step, performance.now()),
    onBooted: (vmNow) => {
      running = vmNow;
      // The moment the marker appears, in host time: a watch on the console file plus a 5 ms
      // poll, whichever sees it first (its own code, independent of the provider's watcher
      // that is being measured).
      const path = vmNow.consoleLogPath!;
      const look = () => {
        if (markerAt !== undefined || !watching) return;
        let text = '';
        try {
          text = readFileSync(path, 'utf8');
        } catch {
          return;
        }
        if (text.includes('MACVM-READY')) {
          markerAt = performance.now();
          cpuAtMarker = vmNow.cpuClock?.();
        }
      };
      try {
        stopWatch = watch(path, look);
      } catch {
        // the poll alone
      }
      poll = setInterval(look, 5);
      look();
    },
  });
  const readyAt = performance.now();
  const cpuAtReady = await running!.cpuClock?.();
  watching = false;
  stopWatch?.close();
  clearInterval(poll);
  // The floor: one full connect (TCP + SSH handshake + auth) to this same guest, now running.
  const endpoint = await running!.endpoint(new Deadline(10_000));
  const mine: number[] = [];
  for (let h = 0; h < handshakesPerBoot; h++) {
    const before = await running!.cpuClock?.();
    const t = performance.now();
    const session = await connectGuest({ host: endpoint.host, port: endpoint.port, credentials: image.ssh, insecureAcceptAnyHostKey: image.ssh.insecureAcceptAnyHostKey });
    mine.push(performance.now() - t);
    await session.close();
    // The guest's side of the connection ends a moment after ours: let it finish before reading.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const after = await running!.cpuClock?.();
    if (before && after) f.laterConnectCpu.push(after.runMs - before.runMs);
  }
  await vm.dispose();
  f.handshake.push(...mine);
  f.ready.push(readyAt - started);
  const atMarker = await cpuAtMarker;
  if (atMarker && cpuAtReady) f.firstConnectCpu.push(cpuAtReady.runMs - atMarker.runMs);
  if (markerAt !== undefined) {
    f.marker.push(markerAt - started);
    f.lag.push(readyAt - markerAt);
    f.excess.push(readyAt - markerAt - median(mine));
    const address = stepAt.get('ssh');
    const ssh = stepAt.get('wait');
    const done = stepAt.get('ready');
    if (address !== undefined && ssh !== undefined && done !== undefined) {
      f.toAddress.push(address - markerAt);
      f.toSsh.push(ssh - address);
      f.inWait.push(done - ssh);
    }
  }
}

function median(values: readonly number[]): number {
  return summarize(values).medianMs;
}

const ms = (s: { medianMs: number; ciLowMs: number; ciHighMs: number }) => `${fmt(s.medianMs)} [${fmt(s.ciLowMs)}–${fmt(s.ciHighMs)}]`;
const fmt = (ms: number) => ms.toFixed(1);
const sec = (ms: number) => (ms / 1000).toFixed(2);
