import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isMacvmError } from '../../src/errors.js';
import { createSshProvider } from '../../src/vm/ssh/provider.js';
import { startMacVM } from '../../src/machine/start.js';
import { startSshd } from '../support/sshd.js';

// safaridriver cannot run here, so this CONTRACT test puts a stand-in on the "guest" (this
// host behind a real sshd, declared as macOS) that replays safaridriver's documented
// behaviour when remote automation is off: it takes `-p <port>`, answers /status ready,
// and refuses POST /session with HTTP 500 and the message Safari gives
// (`{"value":{"error":"session not created","message":"Could not create a session: You must
// enable the 'Allow Remote Automation' option in Safari's Develop menu ..."}}`).
const FAKE_SAFARIDRIVER = `#!${process.execPath}
const http = require('node:http');
const args = process.argv.slice(2);
const at = args.indexOf('-p');
if (at === -1 || !/^\\d+$/.test(args[at + 1] || '')) { console.error('Usage: safaridriver [options]\\n\\t-p, --port <port>'); process.exit(64); }
console.log('safaridriver stand-in on port ' + args[at + 1]);
http.createServer((request, response) => {
  response.setHeader('content-type', 'application/json; charset=utf-8');
  if (request.method === 'GET' && request.url === '/status') return response.end(JSON.stringify({ value: { ready: true, message: '' } }));
  if (request.method === 'POST' && request.url === '/session') {
    response.statusCode = 500;
    return response.end(JSON.stringify({ value: { error: 'session not created', message: "Could not create a session: You must enable the 'Allow Remote Automation' option in Safari's Develop menu to control Safari via WebDriver.", stacktrace: '' } }));
  }
  response.statusCode = 404;
  response.end(JSON.stringify({ value: { error: 'unknown command', message: '', stacktrace: '' } }));
}).listen(Number(args[at + 1]), '127.0.0.1');
`;

let sshd: Awaited<ReturnType<typeof startSshd>>;
let scratch: string;
const savedHome = process.env.MACVM_HOME;

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'macvm-safari-contract-'));
  process.env.MACVM_HOME = join(scratch, 'home');
  sshd = await startSshd();
});

afterAll(async () => {
  await sshd?.stop();
  if (savedHome === undefined) delete process.env.MACVM_HOME;
  else process.env.MACVM_HOME = savedHome;
  rmSync(scratch, { recursive: true, force: true });
});

function pidsWithArg(marker: string): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name) && Number(name) !== process.pid)
    .filter((name) => {
      try {
        return readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(marker);
      } catch {
        return false;
      }
    })
    .map(Number);
}

describe('safaridriver contract', () => {
  it('maps "Allow Remote Automation" off to MACVM_DRIVER_NOT_ENABLED with the command to run in the golden image, and stops the driver', async () => {
    const driverPath = join(scratch, 'safaridriver');
    writeFileSync(driverPath, FAKE_SAFARIDRIVER);
    chmodSync(driverPath, 0o755);
    const provider = createSshProvider({ host: sshd.host, port: sshd.port, user: sshd.user, privateKeyPath: sshd.privateKeyPath, hostKey: sshd.hostKey, os: 'macos' });
    const vm = await startMacVM({ image: 'lab-mac-contract', provider, deadline: 30_000 });
    let error: unknown;
    try {
      // vm.safari() is browser({ browserName: 'safari' }); the stand-in is reached through driverPath.
      error = await vm.browser({ browserName: 'safari', driverPath }).then(
        () => undefined,
        (e: unknown) => e,
      );
      // Failed starts clean up at once, not only at dispose.
      expect(pidsWithArg(driverPath)).toEqual([]);
    } finally {
      await vm.dispose();
    }
    expect(isMacvmError(error) ? error.code : error).toBe('MACVM_DRIVER_NOT_ENABLED');
    const notEnabled = error as Error & { details: Record<string, unknown> };
    expect(notEnabled.message).toContain('sudo safaridriver --enable');
    expect(notEnabled.message).toContain("Allow Remote Automation' option");
    expect(String(notEnabled.details.logTail)).toContain('safaridriver stand-in on port');
    expect(existsSync(String(notEnabled.details.tempDir))).toBe(false);
  });
});
