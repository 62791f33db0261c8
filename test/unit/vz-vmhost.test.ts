import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isMacvmError } from '../../src/errors.js';
import { VmhostClient } from '../../src/vm/vz/vmhost-client.js';
import { LineDecoder, parseEvent, parseRequest, serializeMessage, type VmhostEvent } from '../../src/vm/vz/vmhost-protocol.js';
import { vmSpecIn } from '../fixtures/vz/contract-values.js';

const root = join(import.meta.dirname, '..', '..');
const vmhostMain = join(root, 'src', 'vm', 'vz', 'vmhost-main.ts');
const fakeAddon = join(root, 'test', 'fixtures', 'vz', 'fake-addon.cjs');

let dir: string;
const clients: VmhostClient[] = [];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'macvm-vmhost-'));
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close(2_000)));
  await rm(dir, { recursive: true, force: true });
});

const spec = (diskName?: string) => vmSpecIn(dir, diskName);

/** The real vmhost entry (through tsx), with the fake addon in place of Virtualization.framework. */
async function startVmhost(env: Record<string, string> = {}): Promise<VmhostClient> {
  const client = await VmhostClient.spawn({
    command: process.execPath,
    args: ['--import', 'tsx', vmhostMain],
    env: { ...process.env, MACVM_VZ_ADDON: fakeAddon, MACVM_FAKE_VZ_LOG: join(dir, 'calls.log'), ...env },
    logPath: join(dir, 'vmhost.log'),
    helloTimeoutMs: 30_000,
  });
  clients.push(client);
  return client;
}

const calls = async () => (await readFile(join(dir, 'calls.log'), 'utf8')).trim().split('\n');

describe('vmhost line framing', { timeout: 30_000 }, () => {
  it('reassembles lines cut anywhere, including inside a UTF-8 character', () => {
    const bytes = Buffer.from(serializeMessage({ event: 'state', state: 'running' }) + serializeMessage({ event: 'error', error: { code: 'X', message: 'café ☕' } }));
    for (let cut = 1; cut < bytes.length; cut += 7) {
      const decoder = new LineDecoder();
      const lines = [...decoder.push(bytes.subarray(0, cut)), ...decoder.push(bytes.subarray(cut)), ...decoder.end()];
      expect(lines.map((l) => parseEvent(l))).toEqual([
        { event: 'state', state: 'running' },
        { event: 'error', error: { code: 'X', message: 'café ☕' } },
      ]);
    }
  });

  it('keeps a last line without newline for end(), drops blank lines and CRs', () => {
    const decoder = new LineDecoder();
    expect(decoder.push('{"a":1}\r\n\n{"b"')).toEqual(['{"a":1}']);
    expect(decoder.end()).toEqual(['{"b"']);
  });

  it('refuses an endless line instead of buffering it forever', () => {
    const decoder = new LineDecoder(64);
    expect(() => decoder.push('x'.repeat(100))).toThrow(/longer than 64/);
  });

  it('validates commands and events', () => {
    expect(parseRequest('{"id":3,"cmd":"state"}')).toEqual({ id: 3, cmd: 'state' });
    expect(() => parseRequest('{"cmd":"state"}')).toThrow(/id/);
    expect(() => parseRequest('{"id":1,"cmd":"reboot"}')).toThrow(/unknown command/);
    expect(() => parseRequest('{"id":1,"cmd":"start"}')).toThrow(/spec/);
    expect(() => parseEvent('{"event":"reply","ok":true}')).toThrow(/id/);
    expect(() => parseEvent('nope')).toThrow(/not JSON/);
  });

  it('reads events from a real child that writes them in small pieces', async () => {
    const script = join(dir, 'chunky.mjs');
    const payload = serializeMessage({ event: 'hello', pid: 1 }) + serializeMessage({ event: 'state', state: 'running' }) + serializeMessage({ event: 'stopped', reason: 'guest' });
    await writeFile(
      script,
      `const data = Buffer.from(${JSON.stringify(payload)});
       let i = 0;
       const step = () => { if (i >= data.length) { process.stdin.resume(); process.stdin.on('end', () => process.exit(0)); return; }
         process.stdout.write(data.subarray(i, i + 5)); i += 5; setTimeout(step, 1); };
       step();`,
    );
    const client = await VmhostClient.spawn({ command: process.execPath, args: [script] });
    clients.push(client);
    const seen: VmhostEvent[] = [];
    client.on((e) => seen.push(e));
    await client.waitFor((e) => e.event === 'stopped');
    expect(seen).toEqual([{ event: 'state', state: 'running' }, { event: 'stopped', reason: 'guest' }]);
    expect(client.lastState).toBe('stopped');
    expect(await client.close()).toEqual({ code: 0, signal: null });
  });
});

describe('vmhost contract (real vmhost process, fake addon replaying Virtualization.framework)', { timeout: 60_000 }, () => {
  it('contract: start reports starting then running; requestStop ends with a guest stop', async () => {
    const client = await startVmhost();
    const states: string[] = [];
    client.on((e) => e.event === 'state' && states.push(e.state));
    await client.request({ cmd: 'start', spec: spec() });
    expect(await client.request({ cmd: 'state' })).toBe('running');
    const stopped = client.waitFor((e) => e.event === 'stopped');
    await client.request({ cmd: 'requestStop' });
    expect(await stopped).toEqual({ event: 'stopped', reason: 'guest' });
    expect(states).toEqual(['starting', 'running', 'stopped']);
    expect(await calls()).toEqual(['new 0e:5a:03:00:01:02 cpus=4 memory=8589934592', 'start', 'requestStop']);
  });

  it('contract: closing stdin stops the VM and ends the process', async () => {
    const client = await startVmhost();
    await client.request({ cmd: 'start', spec: spec() });
    const exit = await client.close();
    expect(exit.code).toBe(0);
    expect(await calls()).toEqual(expect.arrayContaining(['start', 'stop', 'close']));
  });

  it('contract: SIGTERM stops the VM too', async () => {
    const client = await startVmhost();
    await client.request({ cmd: 'start', spec: spec() });
    process.kill(client.pid!, 'SIGTERM');
    await client.exited;
    expect(await calls()).toContain('stop');
  });

  it('contract: VZErrorVirtualMachineLimitExceeded arrives as MACVM_SLOT_LIMIT with the NSError facts', async () => {
    const client = await startVmhost();
    const error = await client.request({ cmd: 'start', spec: spec('limit-exceeded.img') }).catch((e: unknown) => e);
    expect(isMacvmError(error, 'MACVM_SLOT_LIMIT')).toBe(true);
    expect((error as { details: unknown }).details).toEqual({ domain: 'VZErrorDomain', nativeCode: 6 });
    expect((error as Error).message).toMatch(/two macOS VMs/);
  });

  it('contract: a VM that dies reports stopped with the error', async () => {
    const client = await startVmhost();
    const stopped = client.waitFor((e) => e.event === 'stopped');
    await client.request({ cmd: 'start', spec: spec('crash.img') });
    expect(await stopped).toMatchObject({ event: 'stopped', reason: 'error', error: { code: 'MACVM_VM_STOPPED', nativeCode: 1 } });
  });

  it('contract: more CPUs than maximumAllowedCPUCount is a bad argument naming the limit, and no VM is made', async () => {
    const client = await startVmhost({ MACVM_FAKE_VZ_MAX_CPUS: '3' });
    const error = await client.request({ cmd: 'start', spec: spec() }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'MACVM_BAD_ARGUMENT', message: expect.stringContaining("cpus: 4 is more than this Mac allows one VM (Virtualization.framework's maximumAllowedCPUCount is 3)") });
    expect(await readFile(join(dir, 'calls.log'), 'utf8').catch(() => '')).not.toContain('new ');
  });

  it('contract: one VM per vmhost; commands before start are refused', async () => {
    const client = await startVmhost();
    await expect(client.request({ cmd: 'requestStop' })).rejects.toMatchObject({ code: 'MACVM_BAD_ARGUMENT' });
    await client.request({ cmd: 'start', spec: spec() });
    await expect(client.request({ cmd: 'start', spec: spec() })).rejects.toMatchObject({ code: 'MACVM_BAD_ARGUMENT' });
  });

  it('contract: install streams progress events for its request', async () => {
    const client = await startVmhost();
    const fractions: number[] = [];
    await client.request({ cmd: 'install', spec: spec(), ipswPath: join(dir, 'x.ipsw') }, { onProgress: (f) => fractions.push(f) });
    expect(fractions).toEqual([0, 0.25, 0.5, 0.75, 1]);
  });

  it('contract: a missing addon is reported as MACVM_NATIVE_ADDON_MISSING', async () => {
    const error = await startVmhost({ MACVM_VZ_ADDON: join(dir, 'nope.node') }).catch((e: unknown) => e);
    expect(isMacvmError(error, 'MACVM_NATIVE_ADDON_MISSING')).toBe(true);
  });
});
