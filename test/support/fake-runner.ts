/**
 * A stand-in for `macvm test`'s main process, run as its own process
 * (`node --import tsx test/support/fake-runner.ts '<json>'`, with MACVM_HOME set): it registers
 * a session, starts the real reaper, and "boots a VM": a real `sleep 300` started in its own
 * process group (so it is not killed with us, as qemu would not be), with a runtime dir and
 * vm.json tagged with the session, and a cleanup command that deletes a marker file.
 *
 * Prints one JSON line { session, vmId, vmPid, reaperPid, marker } when ready, then waits.
 * On stdin: "stop" = dispose nothing and say goodbye to the reaper (it must sweep the VM),
 * then exit by itself (nothing, the reaper connection included, may keep it alive).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { startReaper } from '../../src/runner/reaper.js';
import { registerSession } from '../../src/runner/sessions.js';
import { processStartTime } from '../../src/util/process-identity.js';
import { homePaths } from '../../src/vm/home.js';
import { createTaggedRuntimeDir } from '../../src/vm/runtime-dir.js';

const { session: id, vmId } = JSON.parse(process.argv[2] ?? '{}') as { session: string; vmId: string };
const session = { id, pid: process.pid };
await registerSession(session);
const reaper = await startReaper(session);

const vm = spawn('sleep', ['300'], { detached: true, stdio: 'ignore' });
vm.unref();
const marker = join(homePaths().run, `${vmId}.marker`);
mkdirSync(homePaths().run, { recursive: true, mode: 0o700 });
writeFileSync(marker, 'made by fake-runner; the reaper runs the cleanup command that deletes it\n');
await createTaggedRuntimeDir({
  id: vmId,
  session: id,
  provider: 'qemu',
  image: 'fake',
  createdAt: new Date().toISOString(),
  pid: vm.pid!,
  pidStartTime: await processStartTime(vm.pid!),
  cleanup: [['rm', '-f', marker]],
});

process.stdout.write(`${JSON.stringify({ session: id, vmId, vmPid: vm.pid, reaperPid: reaper.pid, marker })}\n`);

const keepAlive = setInterval(() => {}, 60_000);
const lines = createInterface({ input: process.stdin });
lines.on('line', async (line) => {
  if (line.trim() !== 'stop') return;
  lines.close();
  process.stdin.destroy();
  await reaper.stop();
  clearInterval(keepAlive);
  process.stdout.write('stopped\n');
});
