import type { VzAddon, VzVirtualMachine } from './addon.js';
import { LineDecoder, parseRequest, serializeMessage, type VmhostEvent, type VmhostRequest, type WireError } from './vmhost-protocol.js';

/**
 * The vmhost side of the line protocol (see vmhost-protocol.ts). The one VM this process
 * owns lives in a VmOwner; each connection — vmhost's own stdio, or a client of the
 * listen-mode socket (vmhost-listen.ts) — is a peer attached to it. Replies go to the peer
 * that sent the command; VM events go to every attached peer.
 */
export interface VmhostServer {
  /** Stops the VM (hard stop) and resolves when done; idempotent. */
  shutdown(reason: string): Promise<void>;
  /** Resolves when the server is done (VM stopped, connections closed), so the caller can exit. */
  readonly done: Promise<void>;
}

/** Where one connection's replies and events are written. */
export interface Peer {
  send(message: VmhostEvent): void;
}

export type VmhostLog = (line: string) => void;

/**
 * The VM state of one vmhost: the VM (once started), the peers that hear its events, and
 * whether it has ended — stopped for good by the guest, an error, the `stop` command, or a
 * start that failed. One VM per vmhost, so an ended VM leaves the process nothing to do;
 * listen mode exits then (onEnded), stdio mode waits for its stdin to close as it always did.
 */
export class VmOwner {
  readonly done: Promise<void>;
  private vm?: VzVirtualMachine;
  private ended = false;
  private stopping?: Promise<void>;
  private finish!: () => void;
  private readonly peers = new Set<Peer>();
  private readonly endedListeners: Array<() => void> = [];

  constructor(
    private readonly addon: VzAddon,
    private readonly log: VmhostLog = () => {},
  ) {
    this.done = new Promise<void>((resolve) => (this.finish = resolve));
  }

  get hasVm(): boolean {
    return this.vm !== undefined;
  }

  get peerCount(): number {
    return this.peers.size;
  }

  /** Adds a peer; returns the function that removes it again. */
  attach(peer: Peer): () => void {
    this.peers.add(peer);
    return () => this.peers.delete(peer);
  }

  /** `listener` runs once, after the events and reply that told the peers about the end went out. */
  onEnded(listener: () => void): void {
    this.endedListeners.push(listener);
  }

  /** Runs one command for `peer` and writes the reply to it. */
  run(request: VmhostRequest, peer: Peer): void {
    this.handle(request, peer).then(
      (result) => peer.send({ event: 'reply', id: request.id, ok: true, ...(result === undefined ? {} : { result }) }),
      (error) => peer.send({ event: 'reply', id: request.id, ok: false, error: toWire(error, defaultCode(request.cmd)) }),
    );
  }

  /** Stops the VM (unless it already ended), releases it, and resolves `done`; idempotent. */
  shutdown(reason: string): Promise<void> {
    this.stopping ??= (async () => {
      this.log(`vmhost: shutting down (${reason})`);
      const vm = this.vm;
      if (vm) {
        if (!this.ended) {
          try {
            await vm.stop();
          } catch (error) {
            this.log(`vmhost: stop failed: ${(error as Error).message}`);
          }
          this.broadcast({ event: 'stopped', reason: 'host' });
        }
        vm.close();
      }
      this.finish();
    })();
    return this.stopping;
  }

  private broadcast(message: VmhostEvent): void {
    for (const peer of this.peers) peer.send(message);
  }

  private markEnded(why: string): void {
    if (this.ended) return;
    this.ended = true;
    this.log(`vmhost: the VM ended (${why})`);
    // setImmediate: after the reply or event that reported the end has been written.
    setImmediate(() => this.endedListeners.splice(0).forEach((listener) => listener()));
  }

  private async handle(request: VmhostRequest, peer: Peer): Promise<unknown> {
    const { addon } = this;
    switch (request.cmd) {
      case 'start': {
        if (this.vm) throw wire('MACVM_BAD_ARGUMENT', 'This vmhost already owns a VM; one VM per vmhost process.');
        checkCpuLimit(request.spec.cpuCount, addon.maximumAllowedCPUCount);
        const vm = new addon.VirtualMachine(request.spec, (event) => {
          if (event.type === 'state') this.broadcast({ event: 'state', state: event.state });
          else if (event.reason === 'guest') this.broadcast({ event: 'stopped', reason: 'guest' });
          else this.broadcast({ event: 'stopped', reason: 'error', error: toWire(event.error, 'MACVM_VM_STOPPED') });
          if (event.type === 'stopped') this.markEnded(event.reason === 'guest' ? 'the guest shut down' : 'the VM stopped with an error');
        });
        this.vm = vm;
        try {
          await vm.start();
        } catch (error) {
          this.markEnded('start failed');
          throw error;
        }
        return undefined;
      }
      case 'requestStop':
        return requireVm(this.vm).requestStop();
      case 'stop':
        await requireVm(this.vm).stop();
        this.markEnded('stop command');
        return undefined;
      case 'state':
        return this.vm ? this.vm.state() : 'none';
      case 'restoreImage':
        return request.path ? addon.loadRestoreImage(request.path) : addon.fetchLatestRestoreImage();
      case 'newMachineIdentifier':
        return addon.newMachineIdentifier();
      case 'createAuxiliaryStorage':
        addon.createAuxiliaryStorage(request.path, request.hardwareModel);
        return undefined;
      case 'install':
        return addon.installMacOS(request.spec, request.ipswPath, (fraction) => peer.send({ event: 'progress', id: request.id, fraction }));
    }
  }
}

export interface PeerConnection {
  peer: Peer;
  /** Runs what is left of the input when it ends (a last line without a newline). */
  flush(): void;
  /** Stops sending to this peer (its connection is gone). */
  detach(): void;
}

/** Attaches one connection (`input` commands, `output` replies and events) to `owner`. */
export function connectPeer(owner: VmOwner, input: NodeJS.ReadableStream, output: NodeJS.WritableStream): PeerConnection {
  const peer: Peer = { send: (message) => void output.write(serializeMessage(message)) };
  const detach = owner.attach(peer);
  const decoder = new LineDecoder();
  const onLine = (line: string) => {
    let request: VmhostRequest;
    try {
      request = parseRequest(line);
    } catch (error) {
      peer.send({ event: 'error', error: { code: 'MACVM_BAD_ARGUMENT', message: `vmhost: bad command line: ${(error as Error).message}` } });
      return;
    }
    owner.run(request, peer);
  };
  input.on('data', (chunk: Buffer | string) => {
    try {
      for (const line of decoder.push(chunk)) onLine(line);
    } catch (error) {
      peer.send({ event: 'error', error: { code: 'MACVM_BAD_ARGUMENT', message: `vmhost: ${(error as Error).message}` } });
    }
  });
  return {
    peer,
    flush: () => decoder.end().forEach(onLine),
    detach,
  };
}

/**
 * stdio mode: one peer on vmhost's stdin/stdout. When stdin closes — the parent closed it
 * on purpose, or died — the VM is stopped and vmhost exits: the VM never outlives its parent.
 */
export function serveVmhost(addon: VzAddon, input: NodeJS.ReadableStream, output: NodeJS.WritableStream, log: VmhostLog = () => {}): VmhostServer {
  const owner = new VmOwner(addon, log);
  const connection = connectPeer(owner, input, output);
  input.on('end', () => {
    connection.flush();
    void owner.shutdown('stdin closed');
  });
  input.on('error', () => void owner.shutdown('stdin error'));
  connection.peer.send({ event: 'hello', pid: process.pid });
  return { shutdown: (reason) => owner.shutdown(reason), done: owner.done };
}

/**
 * Virtualization.framework's validateWithError: refuses more CPUs than
 * VZVirtualMachineConfiguration.maximumAllowedCPUCount (the host's cores) with a generic
 * "invalid configuration"; said here first, as a bad argument, with the number that works.
 */
export function checkCpuLimit(cpuCount: number, maximum: number | undefined): void {
  if (typeof maximum !== 'number' || !(maximum > 0) || cpuCount <= maximum) return;
  throw wire('MACVM_BAD_ARGUMENT', `cpus: ${cpuCount} is more than this Mac allows one VM (Virtualization.framework's maximumAllowedCPUCount is ${maximum}); ask for ${maximum} or fewer.`);
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
