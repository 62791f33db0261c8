/**
 * Apple LZ4 stream (src/oci/apple-lz4.ts), the codec of Tart's disk layers, on data shaped like
 * a disk, side by side with Debian's lz4 CLI (native C, linked 64 KiB blocks, the same block
 * layout), which runs as a process on files:
 *   macvm enc   encodeAppleLz4 of the whole buffer
 *   macvm dec   AppleLz4Decoder fed 64 KiB chunks, as a network body arrives
 *   lz4 enc/dec `lz4 -BD -B4` and `lz4 -d`, file to file (process start and file I/O included)
 * Each is timed in CPU seconds (user + system: ours from process.cpuUsage, the CLI's from the
 * children's times in /proc/self/stat), the least of several runs, because on a shared, busy host
 * wall time mostly measures the neighbours; the wall-clock median is printed beside it. Nothing
 * is asserted.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { AppleLz4Decoder, encodeAppleLz4 } from '../src/oci/apple-lz4.js';

const run$ = promisify(execFile);
const RUNS = 5;
const MiB = 1024 * 1024;

/** CPU milliseconds used so far by this process, or by its finished children. */
function ownCpuMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}
function childrenCpuMs(): number {
  // Fields 16 and 17 of /proc/<pid>/stat (cutime, cstime), in clock ticks of 10 ms; the name in
  // field 2 may hold spaces, so count from the ')' that closes it.
  const fields = readFileSync('/proc/self/stat', 'utf8').split(')').pop()!.trim().split(' ');
  return (Number(fields[13]) + Number(fields[14])) * 10;
}

async function measure(fn: () => unknown, cpuMs: () => number): Promise<{ cpu: number; wallMedian: number }> {
  await fn(); // warm-up (JIT, page cache)
  const cpu: number[] = [];
  const wall: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const cpuStart = cpuMs();
    const start = performance.now();
    await fn();
    wall.push(performance.now() - start);
    cpu.push(cpuMs() - cpuStart);
  }
  wall.sort((a, b) => a - b);
  return { cpu: Math.max(1, Math.min(...cpu)), wallMedian: wall[Math.floor(wall.length / 2)]! };
}

/** Disk-like: pieces of a real executable (code and data), long zero runs, text, and incompressible bytes. */
async function diskLike(size: number): Promise<Buffer> {
  const code = await readFile(process.execPath);
  const text = Buffer.from((await readFile(new URL('../README.md', import.meta.url))).toString().repeat(20));
  const parts: Buffer[] = [];
  let total = 0;
  for (let i = 0; total < size; i++) {
    const offset = (i * 7 * MiB) % Math.max(1, code.length - 4 * MiB);
    for (const part of [code.subarray(offset, offset + 4 * MiB), Buffer.alloc(3 * MiB), text.subarray(0, MiB), randomBytes(MiB / 2)]) {
      parts.push(part);
      total += part.length;
    }
  }
  return Buffer.concat(parts).subarray(0, size);
}

function rate(bytes: number, ms: number): string {
  return (bytes / 1e6 / (ms / 1000)).toFixed(0);
}

export async function run(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'macvm-bench-lz4-'));
  try {
    const code = await readFile(process.execPath);
    const sets: [string, Buffer][] = [
      ['zeros (256 MiB)', Buffer.alloc(256 * MiB)],
      ['disk-like mix (64 MiB)', await diskLike(64 * MiB)],
      ['executable code (32 MiB)', Buffer.from(code.subarray(0, 32 * MiB))],
      ['random (32 MiB)', randomBytes(32 * MiB)],
    ];
    console.log('MB/s of uncompressed data per CPU second (least of runs); in brackets, per wall second (median)');
    console.log(`${'data'.padEnd(26)} ${'ratio'.padStart(6)} ${'macvm enc'.padStart(22)} ${'macvm dec'.padStart(22)} ${'lz4 ratio'.padStart(9)} ${'lz4 enc'.padStart(22)} ${'lz4 dec'.padStart(22)}`);
    for (const [label, data] of sets) {
      let stream: Buffer = Buffer.alloc(0);
      const encode = await measure(() => {
        stream = encodeAppleLz4(data);
      }, ownCpuMs);
      const decode = await measure(() => {
        let decoded = 0;
        const decoder = new AppleLz4Decoder((bytes) => {
          decoded += bytes.length;
        });
        for (let at = 0; at < stream.length; at += 64 * 1024) decoder.write(stream.subarray(at, at + 64 * 1024));
        decoder.end();
        if (decoded !== data.length) throw new Error(`decoded ${decoded} of ${data.length} bytes`);
      }, ownCpuMs);
      const plain = join(dir, 'plain');
      const packed = join(dir, 'plain.lz4');
      await writeFile(plain, data);
      const cliEncode = await measure(() => run$('lz4', ['-q', '-f', '-BD', '-B4', '--no-frame-crc', plain, packed]), childrenCpuMs);
      const packedSize = (await readFile(packed)).length;
      const cliDecode = await measure(() => run$('lz4', ['-q', '-f', '-d', packed, join(dir, 'back')]), childrenCpuMs);
      const figure = (m: { cpu: number; wallMedian: number }) => `${rate(data.length, m.cpu)} (${rate(data.length, m.wallMedian)})`.padStart(22);
      console.log(
        `${label.padEnd(26)} ${(stream.length / data.length).toFixed(4).padStart(6)} ${figure(encode)} ${figure(decode)} ${(packedSize / data.length).toFixed(4).padStart(9)} ${figure(cliEncode)} ${figure(cliDecode)}`,
      );
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
