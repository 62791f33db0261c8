/**
 * vmhost: one process per VM. Runs on the ad-hoc-signed copy of node that carries
 * com.apple.security.virtualization (see vmhost-binary.ts), loads the addon, and serves the
 * line protocol on stdio. stdout is reserved for protocol lines; logs go to stderr.
 */
import { loadVzAddon } from './addon.js';
import { serializeMessage } from './vmhost-protocol.js';
import { serveVmhost } from './vmhost-server.js';

const log = (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);

let addon;
try {
  addon = loadVzAddon();
} catch (error) {
  const e = error as Error & { code?: string };
  process.stdout.write(serializeMessage({ event: 'error', error: { code: e.code ?? 'MACVM_NATIVE_ADDON_MISSING', message: e.message } }));
  process.exit(3);
}

const server = serveVmhost(addon, process.stdin, process.stdout, log);
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  process.once(signal, () => void server.shutdown(signal));
}
await server.done;
// Let the last protocol lines drain before leaving.
process.stdout.write('', () => process.exit(0));
