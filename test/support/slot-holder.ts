/**
 * A stand-in for a test worker that needs a VM slot, run as its own process
 * (`node --import tsx test/support/slot-holder.ts '<json options>'`). It waits for a line
 * "go" on stdin (so the test decides the order of arrival), takes a slot, holds it for
 * `holdMs` (forever when -1), gives it back, and appends each event to a shared log as
 * one JSON line: { t, suite, pid, event: 'waiting' | 'acquired' | 'releasing', ... }.
 */
import { appendFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { acquireSlot } from '../../src/runner/slots.js';

interface Options {
  home: string;
  provider: string;
  limit: number;
  suite: string;
  holdMs: number;
  log: string;
  timeoutMs?: number;
}

const options = JSON.parse(process.argv[2] ?? '{}') as Options;
const now = () => performance.timeOrigin + performance.now();
const log = (event: string, extra: Record<string, unknown> = {}) =>
  appendFileSync(options.log, `${JSON.stringify({ t: now(), suite: options.suite, pid: process.pid, event, ...extra })}\n`);

const lines = createInterface({ input: process.stdin });
await new Promise<void>((resolve) => lines.on('line', (line) => line.trim() === 'go' && resolve()));
lines.close();

let waited = false;
const lease = await acquireSlot({
  provider: options.provider,
  limit: options.limit,
  holder: { session: 'slot-test', suite: options.suite, pid: process.pid },
  timeoutMs: options.timeoutMs ?? 60_000,
  home: options.home,
  pollMs: 50,
  onWait: (info) => {
    if (!waited) log('waiting', { position: info.position, holders: info.holders.map((h) => h.suite) });
    waited = true;
  },
});
log('acquired', { index: lease.index, waited });
if (options.holdMs < 0) await new Promise(() => setInterval(() => {}, 60_000));
await sleep(options.holdMs);
log('releasing', { index: lease.index });
await lease.release();
