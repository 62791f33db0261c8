import type { VzAddon, VzVirtualMachine } from './addon.js';
import { LineDecoder, parseRequest, serializeMessage, type VmhostEvent, type VmhostRequest, type WireError } from './vmhost-protocol.js';

/**
 * The vmhost side of the line protocol (see vmhost-protocol.ts): reads commands from
 * `input`, drives the one VM this process owns through the addon, writes replies and
 * events to `output`. Resolves once the VM is stopped after `input` ended or shutdown()
 * was called, so the caller can exit.
 */
export interface VmhostServer {
  /** Stops the VM (hard stop) and resolves when done; idempotent. */
  shutdown(reason: string): Promise<void>;
  /** Resolves when the server is done (input ended and VM stopped). */
  readonly done: Promise<void>;
}

export function serveVmhost(addon: VzAddon, input: NodeJS.ReadableStream, output: NodeJS.WritableStream, log: (line: string) => void = () => {}): VmhostServer {
  let vm: VzVirtualMachine | undefined;
  let stopping: Promise<void> | undefined;
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  const send = (message: VmhostEvent) => output.write(serializeMessage(message));

  const shutdown = (reason: string): Promise<void> => {
    stopping ??= (async () => {
      log(`vmhost: shutting down (${reason})`);
      if (vm) {
        try {
          await vm.stop();
        } catch (error) {
          log(`vmhost: stop failed: ${(error as Error).message}`);
        }
        vm.close();
        send({ event: 'stopped', reason: 'host' });
      }
      finish();
    })();
    return stopping;
  };

  const handle = async (request: VmhostRequest): Promise<unknown> => {
    switch (request.cmd) {
      case 'start': {
        if (vm) throw wire('MACVM_BAD_ARGUMENT', 'This vmhost already owns a VM; one VM per vmhost process.');
        vm = new addon.VirtualMachine(request.spec, (event) => {
          if (event.type === 'state') send({ event: 'state', state: event.state });
          else if (event.reason === 'guest') send({ event: 'stopped', reason: 'guest' });
          else send({ event: 'stopped', reason: 'error', error: toWire(event.error, 'MACVM_VM_STOPPED') });
        });
        await vm.start();
        return undefined;
      }
      case 'requestStop':
        return requireVm(vm).requestStop();
      case 'stop':
        return requireVm(vm).stop();
      case 'state':
        return vm ? vm.state() : 'none';
      case 'restoreImage':
        return request.path ? addon.loadRestoreImage(request.path) : addon.fetchLatestRestoreImage();
      case 'newMachineIdentifier':
        return addon.newMachineIdentifier();
      case 'createAuxiliaryStorage':
        addon.createAuxiliaryStorage(request.path, request.hardwareModel);
        return undefined;
      case 'install':
        return addon.installMacOS(request.spec, request.ipswPath, (fraction) => send({ event: 'progress', id: request.id, fraction }));
    }
  };

  const decoder = new LineDecoder();
  const onLine = (line: string) => {
    let request: VmhostRequest;
    try {
      request = parseRequest(line);
    } catch (error) {
      send({ event: 'error', error: { code: 'MACVM_BAD_ARGUMENT', message: `vmhost: bad command line: ${(error as Error).message}` } });
      return;
    }
    handle(request).then(
      (result) => send({ event: 'reply', id: request.id, ok: true, ...(result === undefined ? {} : { result }) }),
      (error) => send({ event: 'reply', id: request.id, ok: false, error: toWire(error, defaultCode(request.cmd)) }),
    );
  };
  input.on('data', (chunk: Buffer | string) => {
    try {
      for (const line of decoder.push(chunk)) onLine(line);
    } catch (error) {
      send({ event: 'error', error: { code: 'MACVM_BAD_ARGUMENT', message: `vmhost: ${(error as Error).message}` } });
    }
  });
  // The parent went away (or closed our stdin on purpose): the VM must not outlive it.
  input.on('end', () => {
    for (const line of decoder.end()) onLine(line);
    void shutdown('stdin closed');
  });
  input.on('error', () => void shutdown('stdin error'));
  send({ event: 'hello', pid: process.pid });
  return { shutdown, done };
}

function requireVm(vm: VzVirtualMachine | undefined): VzVirtualMachine {
  if (!vm) throw wire('MACVM_BAD_ARGUMENT', 'No VM yet: send "start" first.');
  return vm;
}

function defaultCode(cmd: VmhostRequest['cmd']): string {
  switch (cmd) {
    case 'start':
      return 'MACVM_BOOT_FAILED';
    case 'requestStop':
    case 'stop':
      return 'MACVM_STOP_FAILED';
    case 'restoreImage':
      return 'MACVM_IPSW_INVALID';
    case 'install':
    case 'createAuxiliaryStorage':
      return 'MACVM_INSTALL_FAILED';
    default:
      return 'MACVM_BOOT_FAILED';
  }
}

function wire(code: string, message: string): Error & WireError {
  return Object.assign(new Error(message), { code });
}

/** Errors from the addon carry `code` (a MacvmError code), `domain` and `nativeCode` (NSError). */
function toWire(error: unknown, fallbackCode: string): WireError {
  const e = (error ?? {}) as Partial<WireError> & { message?: string };
  const out: WireError = {
    code: typeof e.code === 'string' && e.code.startsWith('MACVM_') ? e.code : fallbackCode,
    message: typeof e.message === 'string' ? e.message : String(error),
  };
  if (typeof e.domain === 'string') out.domain = e.domain;
  if (typeof e.nativeCode === 'number') out.nativeCode = e.nativeCode;
  return out;
}
