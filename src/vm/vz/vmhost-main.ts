/**
 * vmhost: one process per VM. Runs on the ad-hoc-signed copy of node that carries
 * com.apple.security.virtualization (see vmhost-binary.ts), loads the addon, and serves the
 * line protocol (vmhost-protocol.ts) in one of two modes, chosen by the host side's argv:
 *
 *   vmhost-main.js                       stdio mode: commands on stdin, replies and events on
 *                                        stdout, logs on stderr. stdin closing stops the VM,
 *                                        so the VM never outlives the process that spawned it.
 *   vmhost-main.js --listen <socket>     listen mode, for detached VMs (`macvm vm start`):
 *                                        spawned as its own session with stdin ignored and
 *                                        stdout/stderr appended to vmhost.log; serves the same
 *                                        protocol on the unix socket (mode 0600) to clients that
 *                                        come and go (vmhost-listen.ts). The VM stops on `stop`,
 *                                        a guest shutdown or SIGTERM/SIGINT/SIGHUP, and then
 *                                        vmhost removes the socket and exits.
 *
 * Logs say what happened (connections, shutdowns, errors), never command contents.
 */
import { loadVzAddon } from './addon.js';
import { serializeMessage } from './vmhost-protocol.js';
import { listenVmhost } from './vmhost-listen.js';
import { serveVmhost, type VmhostServer } from './vmhost-server.js';

const log = (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);

const listenAt = argValue('--listen');

let addon;
try {
  addon = loadVzAddon();
} catch (error) {
  // In listen mode stdout is vmhost.log: the host side reads this line back from there.
  const e = error as Error & { code?: string };
  process.stdout.write(serializeMessage({ event: 'error', error: { code: e.code ?? 'MACVM_NATIVE_ADDON_MISSING', message: e.message } }));
  process.exit(3);
}

let server: VmhostServer;
if (listenAt) {
  try {
    server = await listenVmhost(addon, listenAt, log);
  } catch (error) {
    log(`vmhost: cannot listen on ${listenAt}: ${(error as Error).message}`);
    process.exit(4);
  }
  log(`vmhost: listen mode, pid ${process.pid}`);
} else {
  server = serveVmhost(addon, process.stdin, process.stdout, log);
}
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  process.once(signal, () => void server.shutdown(signal));
}
await server.done;
// Let the last protocol lines drain before leaving.
process.stdout.write('', () => process.exit(0));

function argValue(name: string): string | undefined {
  const at = process.argv.indexOf(name);
  return at >= 0 ? process.argv[at + 1] : undefined;
}
