/**
 * GuestSession costs against a real local sshd (test/support/sshd.ts): connect,
 * one exec round trip, SFTP throughput both ways, and a forwarded TCP round trip
 * next to a direct one. Exec time includes the login shell's start-up files of
 * the user running the bench, which dominate on some hosts; printed, never asserted.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectGuest } from '../src/guest/session.js';
import { startSshd } from '../test/support/sshd.js';

export async function run(): Promise<void> {
  const sshd = await startSshd();
  const dir = await mkdtemp(join(tmpdir(), 'macvm-bench-session-'));
  const echo = createServer((socket) => {
    socket.on('error', () => socket.destroy());
    socket.pipe(socket);
  });
  try {
    const connectMs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      const session = await connectGuest({ host: sshd.host, port: sshd.port, credentials: sshd.credentials });
      connectMs.push(performance.now() - started);
      await session.close();
    }
    const session = await connectGuest({ host: sshd.host, port: sshd.port, credentials: sshd.credentials });
    try {
      const execMs: number[] = [];
      for (let i = 0; i < 5; i++) execMs.push((await session.exec('true')).durationMs);

      const size = 32 * 1024 * 1024;
      const local = join(dir, 'payload.bin');
      await writeFile(local, randomBytes(size));
      const uploadMs = await timed(() => session.upload(local, join(dir, 'uploaded.bin')));
      const downloadMs = await timed(() => session.download(join(dir, 'uploaded.bin'), join(dir, 'downloaded.bin')));

      await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', () => resolve()));
      const echoPort = (echo.address() as AddressInfo).port;
      const forward = await session.forwardGuestPort(echoPort);
      const directUs = await pingPong(echoPort, 200);
      const forwardedUs = await pingPong(forward.port, 200);
      await forward.close();

      console.log(`connect (TCP + handshake + auth): median ${median(connectMs).toFixed(1)} ms of 5`);
      console.log(`exec 'true' round trip:           median ${median(execMs).toFixed(1)} ms of 5 (includes the login shell's start-up)`);
      console.log(`SFTP upload 32 MiB:               ${mibPerSecond(size, uploadMs)} MiB/s`);
      console.log(`SFTP download 32 MiB:             ${mibPerSecond(size, downloadMs)} MiB/s`);
      console.log(`TCP round trip, direct:           median ${directUs.toFixed(0)} µs of 200`);
      console.log(`TCP round trip, forwarded:        median ${forwardedUs.toFixed(0)} µs of 200 (${(forwardedUs / directUs).toFixed(1)}× direct)`);
    } finally {
      await session.close();
    }
  } finally {
    echo.close();
    await sshd.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

async function timed(work: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await work();
  return performance.now() - started;
}

/** Median microseconds for one small message to go out and come back on one connection. */
async function pingPong(port: number, rounds: number): Promise<number> {
  const socket = await new Promise<Socket>((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
  socket.setNoDelay(true);
  const samples: number[] = [];
  try {
    for (let i = 0; i < rounds; i++) {
      const started = performance.now();
      await new Promise<void>((resolve) => {
        socket.once('data', () => resolve());
        socket.write('x');
      });
      samples.push((performance.now() - started) * 1000);
    }
  } finally {
    socket.destroy();
  }
  return median(samples);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

function mibPerSecond(bytes: number, ms: number): string {
  return (bytes / 1024 / 1024 / (ms / 1000)).toFixed(1);
}
