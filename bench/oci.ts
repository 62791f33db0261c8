/**
 * `npm run bench oci` (issue #12): a pull of a ≥ 2 GiB sparse Tart image from a registry on
 * loopback, macvm beside Debian's `skopeo copy` of the same image to a local dir.
 *
 * The image: a Tart bundle (config.json, disk.img, nvram.bin) whose disk is linux-browser's
 * qcow2 converted to raw and placed into a 4 GiB sparse file — real ext4 content in some
 * pieces, a few metadata blocks in others, all-zero pieces — pushed once with macvm's
 * pushImage into Debian's docker-registry (test/support/registry-server.ts). Both clients talk
 * to the registry itself (`registryHost`), not the fault proxy that tests put in front of it:
 * this measures the clients, not the proxy.
 *
 *   macvm   pullImage in a child process (bench/_oci-pull-child.mjs; compiled dist/ under plain
 *           node when it is current, as `macvm image pull` runs it): download, blob digests,
 *           Apple LZ4 decode, piece digests, sparse disk write, fsync, install
 *   skopeo  `skopeo copy docker://… dir:…`: download and blob digests, files as they come
 *
 * Interleaved A/B pairs after one warm-up pair, first side alternating, each into a fresh empty
 * dir on the same filesystem; `sync` before each side so neither pays for the other's
 * write-back. The registry's blobs are in the page cache for every round (the push wrote them).
 * Times come from /usr/bin/time around each process (wall from here, at µs resolution). Nothing
 * is asserted.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, open, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { median, medianConfidenceInterval } from '../src/bench/stats.js';
import { pushImage, tartPushPlan } from '../src/oci/push.js';
import { RegistryClient } from '../src/oci/registry-client.js';
import { homePaths } from '../src/vm/home.js';
import { startRegistry, type TestRegistry } from '../test/support/registry-server.js';

const run$ = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const PIECE = 512 * MiB;
const DISK_BYTES = 4 * GiB;
/** 9 pairs: the fewest whose median CI reaches 95 % without taking min and max. */
const PAIRS = Number(process.env.MACVM_BENCH_OCI_PAIRS ?? 9);
const REPOSITORY = 'bench/tart-linux';
const TAG = 'v1';

interface Timed {
  wallMs: number;
  cpuMs: number;
  stdout: string;
}

interface Sample {
  wallMs: number;
  cpuMs: number;
  /** CPU the registry spent serving this side. */
  registryCpuMs: number;
  /** Blocks allocated by what the side wrote. */
  allocated: number;
  /** Of which the disk (macvm's side). */
  diskAllocated?: number;
}

export async function run(): Promise<void> {
  console.log(`load at start: ${loadAverage()}`);
  // Judged now, right after `npm run build`, before anyone's later edit makes a source newer.
  const pull = pullModule();
  const work = await mkdtemp(join(tmpdir(), 'macvm-bench-oci-'));
  let registry: TestRegistry | undefined;
  try {
    const { bundle, origin } = await makeBundle(work);
    const disk = join(bundle, 'disk.img');
    const source = await digestAndMap(disk);
    console.log(`image: ${origin}`);
    console.log(`  disk.img ${gib(DISK_BYTES)} apparent, ${gib(await allocated(disk))} allocated; 64 KiB blocks holding data per 512 MiB piece: ${source.pieces.map((p) => `${(p * 100).toFixed(p > 0 && p < 0.01 ? 3 : 0)} %`).join(', ')}`);

    registry = await startRegistry({ auth: 'none' });
    const reference = `${registry.registryHost}/${REPOSITORY}:${TAG}`;
    const pushStart = performance.now();
    await pushImage(await tartPushPlan(bundle), reference);
    const pushMs = performance.now() - pushStart;
    const { manifest } = await new RegistryClient(registry.registryHost, REPOSITORY).getManifest(TAG);
    const blobs = new Map(manifest.layers.map((layer) => [layer.digest, layer.size]));
    const compressed = [...blobs.values()].reduce((sum, size) => sum + size, 0);
    console.log(`  ${manifest.layers.length} layers, ${blobs.size} distinct blobs, ${mib(compressed)} compressed (Apple LZ4)`);
    console.log(`push (macvm pushImage, in this process, to the registry itself): ${seconds(pushMs)}`);

    const registryPid = childPid('docker-registry');
    const env = { ...process.env, HOME: registry.anonymousEnv.HOME };
    console.log(`macvm side: ${pull.label}; skopeo: ${(await run$('skopeo', ['--version'])).stdout.trim()}`);
    const noop = await timed(process.execPath, [...pull.nodeArgs, join(here, '_oci-pull-child.mjs'), JSON.stringify({ module: pull.url, noop: true })], env);
    console.log(`  (macvm's child process starting and loading the pull module, nothing pulled: ${seconds(noop.wallMs)})`);

    let verified = '';
    const sides = {
      macvm: async (dir: string): Promise<Sample> => {
        const tartCacheRoot = join(dir, 'tart');
        await mkdir(tartCacheRoot, { recursive: true });
        const job = { module: pull.url, reference, cacheRoot: join(dir, 'cache'), tartCacheRoot };
        const before = registryCpuMs(registryPid);
        const result = await timed(process.execPath, [...pull.nodeArgs, join(here, '_oci-pull-child.mjs'), JSON.stringify(job)], env);
        const registryCpu = registryCpuMs(registryPid) - before;
        const pulled = JSON.parse(result.stdout.trim().split('\n').pop()!) as { dir: string; fromCache: boolean };
        if (pulled.fromCache) throw new Error('the macvm side found the image cached: the round measured nothing');
        if (!verified) {
          // Once, outside the timed part: the pulled disk is the pushed one, byte for byte.
          const got = await digestAndMap(join(pulled.dir, 'disk.img'));
          verified = got.digest === source.digest ? `pulled disk.img = source (${got.digest.slice(0, 19)}…)` : `PULLED DISK DIFFERS: ${got.digest} vs source ${source.digest}`;
        }
        return { wallMs: result.wallMs, cpuMs: result.cpuMs, registryCpuMs: registryCpu, allocated: await allocated(dir), diskAllocated: await allocated(join(pulled.dir, 'disk.img')) };
      },
      skopeo: async (dir: string): Promise<Sample> => {
        const before = registryCpuMs(registryPid);
        const result = await timed('skopeo', ['--insecure-policy', 'copy', '--quiet', '--src-tls-verify=false', `docker://${reference}`, `dir:${join(dir, 'image')}`], env);
        const registryCpu = registryCpuMs(registryPid) - before;
        return { wallMs: result.wallMs, cpuMs: result.cpuMs, registryCpuMs: registryCpu, allocated: await allocated(dir) };
      },
    };
    type Side = keyof typeof sides;
    const samples: Record<Side, Sample[]> = { macvm: [], skopeo: [] };
    const once = async (side: Side, round: string): Promise<Sample> => {
      const dir = join(work, 'rounds', `${round}-${side}`);
      await mkdir(dir, { recursive: true });
      await run$('sync'); // the previous side's write-back is not billed to this one
      try {
        return await sides[side](dir);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    };
    console.log(`warm-up pair (not counted), then ${PAIRS} pairs, first side alternating…`);
    await once('macvm', 'warmup');
    await once('skopeo', 'warmup');
    const ratios: number[] = [];
    for (let pair = 0; pair < PAIRS; pair++) {
      const order: Side[] = pair % 2 === 0 ? ['macvm', 'skopeo'] : ['skopeo', 'macvm'];
      const got: Partial<Record<Side, Sample>> = {};
      for (const side of order) got[side] = await once(side, `pair-${pair}`);
      samples.macvm.push(got.macvm!);
      samples.skopeo.push(got.skopeo!);
      ratios.push(got.macvm!.wallMs / got.skopeo!.wallMs);
      console.log(`  pair ${pair + 1} (${order[0]} first): macvm ${seconds(got.macvm!.wallMs)}, skopeo ${seconds(got.skopeo!.wallMs)} → ${ratios.at(-1)!.toFixed(2)}×`);
    }

    console.log(`\n${'side'.padEnd(8)} ${'wall: median (CI)'.padEnd(40)} ${'CPU user+sys'.padEnd(14)} ${'registry CPU'.padEnd(14)} allocated after`);
    for (const side of ['macvm', 'skopeo'] as const) {
      const list = samples[side];
      const wall = list.map((s) => s.wallMs);
      console.log(
        `${side.padEnd(8)} ${`${seconds(median(wall))} (${interval(wall, seconds)})`.padEnd(40)} ${seconds(median(list.map((s) => s.cpuMs))).padEnd(14)} ${seconds(median(list.map((s) => s.registryCpuMs))).padEnd(14)} ${mib(median(list.map((s) => s.allocated)))}${list[0]?.diskAllocated !== undefined ? ` (disk.img ${mib(median(list.map((s) => s.diskAllocated!)))})` : ''}`,
      );
    }
    console.log(`ratio macvm/skopeo (wall, per pair): median ${median(ratios).toFixed(2)}× (${interval(ratios, (r) => `${r.toFixed(2)}×`)})`);
    console.log(`check: ${verified}`);
    console.log(`skopeo writes the ${mib(compressed)} of compressed blobs; macvm decodes them into the sparse ${gib(DISK_BYTES)} disk and fsyncs it`);
  } finally {
    await registry?.stop();
    await rm(work, { recursive: true, force: true });
    console.log(`load at end: ${loadAverage()}`);
  }
}

/**
 * The Tart bundle under test. linux-browser's qcow2 when it is built; otherwise linux-test's,
 * with generated disk-like data (code, text, random, zeros) at spread-out offsets, so the disk
 * still has real pieces, partly filled ones and empty ones.
 */
async function makeBundle(work: string): Promise<{ bundle: string; origin: string }> {
  const bundle = join(work, 'bundle');
  await mkdir(bundle);
  const disk = join(bundle, 'disk.img');
  const browser = join(homePaths().image('linux-browser'), 'disk.qcow2');
  const test = join(homePaths().image('linux-test'), 'disk.qcow2');
  let origin: string;
  if (existsSync(browser)) {
    await run$('qemu-img', ['convert', '-O', 'raw', browser, disk]);
    origin = `linux-browser's disk.qcow2 as raw (${gib((await stat(disk)).size)}) at offset 0 of a ${gib(DISK_BYTES)} sparse file`;
  } else if (existsSync(test)) {
    await run$('qemu-img', ['convert', '-O', 'raw', test, disk]);
    await writeGenerated(disk);
    origin = `linux-browser is not built: linux-test's disk.qcow2 as raw plus ~800 MiB of generated data (code, text, random) in a ${gib(DISK_BYTES)} sparse file`;
  } else {
    throw new Error('Neither linux-browser nor linux-test is built; run `node bin/macvm.js image build linux-browser` first.');
  }
  const handle = await open(disk, 'r+');
  await handle.truncate(DISK_BYTES);
  await handle.close();
  // What Tart writes for a Linux VM; the values only have to be plausible.
  const config = { version: 1, os: 'linux', arch: 'arm64', cpuCountMin: 2, cpuCount: 2, memorySizeMin: 2 * GiB, memorySize: 4 * GiB, macAddress: '7a:65:b6:8d:1c:01', display: { width: 1024, height: 768 }, diskFormat: 'raw' };
  await writeFile(join(bundle, 'config.json'), JSON.stringify(config));
  const nvram = Buffer.alloc(128 * 1024, 0xff);
  nvram.write('EFI variable store (bench stand-in)', 0);
  await writeFile(join(bundle, 'nvram.bin'), nvram);
  return { bundle, origin };
}

async function writeGenerated(disk: string): Promise<void> {
  const code = await readFile(process.execPath);
  const text = Buffer.from((await readFile(join(root, 'README.md'))).toString().repeat(40));
  const handle = await open(disk, 'r+');
  try {
    // Piece 2 full of mixed data, piece 4 half, piece 6 a few MiB.
    for (const [start, length] of [[2 * PIECE, PIECE], [4 * PIECE, PIECE / 2], [6 * PIECE + 100 * MiB, 8 * MiB]] as const) {
      for (let at = 0; at < length; at += 8 * MiB) {
        const kind = (at / (8 * MiB)) % 4;
        const part =
          kind === 0 ? code.subarray((at * 3) % (code.length - 8 * MiB)).subarray(0, 8 * MiB) : kind === 1 ? text.subarray(0, 8 * MiB) : kind === 2 ? createHash('sha512').update(String(at)).digest().subarray(0, 64).toString('hex').repeat(8 * 1024).slice(0, 8 * MiB) : '';
        if (part.length) await handle.write(Buffer.from(part), 0, part.length, start + at);
      }
    }
  } finally {
    await handle.close();
  }
}

/** sha256 of a file, and per 512 MiB piece the share of 64 KiB blocks that are not all zeros. */
async function digestAndMap(path: string): Promise<{ digest: string; pieces: number[] }> {
  const handle = await open(path, 'r');
  const hash = createHash('sha256');
  const zero = Buffer.alloc(64 * 1024);
  const buffer = Buffer.allocUnsafe(16 * MiB);
  const pieces: number[] = [];
  try {
    for (let position = 0; ; ) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      for (let at = 0; at < bytesRead; at += zero.length) {
        const piece = Math.floor((position + at) / PIECE);
        pieces[piece] ??= 0;
        if (buffer.compare(zero, 0, Math.min(zero.length, bytesRead - at), at, Math.min(at + zero.length, bytesRead)) !== 0) pieces[piece] += zero.length / PIECE;
      }
      position += bytesRead;
    }
  } finally {
    await handle.close();
  }
  return { digest: `sha256:${hash.digest('hex')}`, pieces };
}

/**
 * The pull module the child loads: compiled dist/ when it is current — every source it is built
 * from (src/oci, src/util, src/shared, src/errors.ts) has its .js in dist/ at least as new —
 * since that is what `macvm image pull` runs (`npm run bench` builds first); else the sources
 * through tsx, and the output says so.
 */
function pullModule(): { url: string; nodeArgs: string[]; label: string } {
  const sources = ['oci', 'util', 'shared'].flatMap((dir) => readdirSync(join(root, 'src', dir)).filter((name) => name.endsWith('.ts')).map((name) => join(dir, name)));
  const current = [...sources, 'errors.ts'].every((source) => {
    const compiled = join(root, 'dist', source.replace(/\.ts$/, '.js'));
    return existsSync(compiled) && statSync(compiled).mtimeMs >= statSync(join(root, 'src', source)).mtimeMs;
  });
  if (current) return { url: pathToFileURL(join(root, 'dist', 'oci', 'pull.js')).href, nodeArgs: [], label: 'pullImage from dist/ (compiled) under plain node, in a child process' };
  return {
    url: pathToFileURL(join(root, 'src', 'oci', 'pull.ts')).href,
    nodeArgs: ['--import', 'tsx'],
    label: 'pullImage from src/ through tsx (dist/ is not current: `npm run build`; tsx adds ~1–2 s of start), in a child process',
  };
}

/** Runs a command under /usr/bin/time: wall time measured here, CPU (user + sys, its children included) from time(1). */
async function timed(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<Timed> {
  const timesFile = join(tmpdir(), `macvm-bench-oci-time-${process.pid}`);
  const start = performance.now();
  const child = spawn('/usr/bin/time', ['-f', '%U %S', '-o', timesFile, command, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr = (stderr + text).slice(-10_000)));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  const wallMs = performance.now() - start;
  const times = await readFile(timesFile, 'utf8').finally(() => rm(timesFile, { force: true }));
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${code}:\n${stderr}`);
  const [user, system] = times.trim().split('\n').pop()!.split(' ').map(Number);
  return { wallMs, cpuMs: (user! + system!) * 1000, stdout };
}

/** The pid of this process's child named `name` (the registry that startRegistry spawned). */
function childPid(name: string): number | undefined {
  for (const task of readdirSync('/proc/self/task')) {
    for (const pid of readFileSync(`/proc/self/task/${task}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === name) return Number(pid);
    }
  }
  return undefined;
}

/** CPU time (user + sys, ms) a process has used so far; NaN when it cannot be read. */
function registryCpuMs(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  // Fields 14 and 15 of /proc/<pid>/stat, in ticks of 10 ms; count from the ')' that ends the name.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(')').pop()!.trim().split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Bytes of blocks allocated under a path (a file, or a dir's files recursively; a link, such as a tag, counts as itself). */
async function allocated(path: string): Promise<number> {
  const info = await lstat(path);
  if (!info.isDirectory()) return info.blocks * 512;
  let sum = 0;
  for (const entry of await readdir(path)) sum += await allocated(join(path, entry));
  return sum;
}

function interval(samples: number[], format: (value: number) => string): string {
  const ci = medianConfidenceInterval(samples);
  return `${(ci.confidence * 100).toFixed(1)} % CI ${format(ci.low)}–${format(ci.high)}`;
}

function loadAverage(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(0)} MiB`;
}

function gib(bytes: number): string {
  return `${(bytes / GiB).toFixed(2)} GiB`;
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
