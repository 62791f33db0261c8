import { EventEmitter } from 'node:events';
import type { Client, ClientChannel } from 'ssh2';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { isMacvmError, type MacvmError } from '../../src/errors.js';
import { execOverSsh, type ExecContext } from '../../src/guest/exec.js';
import type { ExecOptions, ExecResult } from '../../src/guest/types.js';

/**
 * RemoteCommand against a stand-in for ssh2: channels are event emitters the test
 * drives by hand, so timeouts, kills and odd event orders are exact and instant.
 * The real thing is covered by test/integration/guest-session.test.ts.
 */
class FakeChannel extends EventEmitter {
  readonly stderr = new EventEmitter() as EventEmitter & { resume(): void };
  stdin: string | Buffer | undefined;
  signals: string[] = [];
  closed = false;
  destroyed = false;

  constructor() {
    super();
    this.stderr.resume = () => {};
  }
  end(data?: string | Buffer): void {
    this.stdin = data;
  }
  resume(): void {}
  signal(name: string): void {
    this.signals.push(name);
  }
  close(): void {
    this.closed = true;
    queueMicrotask(() => this.emit('close'));
  }
  destroy(): void {
    this.destroyed = true;
  }
  out(text: string): void {
    this.emit('data', Buffer.from(text));
  }
  err(text: string): void {
    this.stderr.emit('data', Buffer.from(text));
  }
  /** The command ends on its own: exit status, then close, as ssh2 reports it. */
  exit(code: number | null, signal?: string): void {
    this.emit('exit', code, signal);
    this.emit('close');
  }
}

class FakeClient {
  /** Command lines in the order they were asked for, with their channels. */
  readonly execs: Array<{ line: string; channel: FakeChannel }> = [];
  refuse: Error | undefined;
  gone = false;

  exec(line: string, callback: (error: Error | undefined, channel: ClientChannel) => void): void {
    if (this.gone) throw new Error('Not connected');
    const channel = new FakeChannel();
    this.execs.push({ line, channel });
    // The kill script's channel ends as soon as it is opened, as a quick `ps | awk` would.
    if (line.includes('macvm-kill')) channel.end = () => queueMicrotask(() => channel.emit('close'));
    callback(this.refuse, channel as unknown as ClientChannel);
  }
}

function setup(endedReason?: string) {
  const client = new FakeClient();
  const live = new Set<unknown>();
  const context: ExecContext = {
    client: client as unknown as Client,
    track: (channel) => {
      live.add(channel);
      return () => live.delete(channel);
    },
    endedReason: () => endedReason,
  };
  const run = (command: string, options?: ExecOptions) => execOverSsh({ context, command, options });
  const channel = (index = 0): FakeChannel => client.execs[index]!.channel;
  return { client, live, run, channel };
}

async function rejection(promise: Promise<unknown>): Promise<MacvmError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  if (!isMacvmError(error)) throw new Error(`expected a MacvmError, got ${String(error)}`);
  return error;
}

afterEach(() => {
  vi.useRealTimers();
});

describe('a command that ends on its own', () => {
  test('the result: output without one final newline, exit code, no marker asked for, stdin closed, channel untracked', async () => {
    const { client, live, run, channel } = setup();
    const pending = run('ls', { stdin: 'input' });
    expect(client.execs[0]!.line).toBe('ls');
    expect(channel().stdin).toBe('input');
    expect(live.size).toBe(1);
    channel().out('a\n');
    channel().err('warn\r\n');
    channel().exit(0);
    const result = await pending;
    expect(result).toMatchObject({ command: 'ls', stdout: 'a', stderr: 'warn', exitCode: 0, signal: null, failed: false, timedOut: false });
    expect(live.size).toBe(0);
  });

  test('stdout and stderr interleaved with a marker split across chunks: each stream keeps its own bytes, callbacks get whole characters', async () => {
    const { run, channel } = setup();
    const seen: string[] = [];
    const pending = run('x', { timeoutMs: 60_000, onStdout: (text) => seen.push(`out:${text}`), onStderr: (text) => seen.push(`err:${text}`) });
    expect(channel().stdin).toBeUndefined();
    const euro = Buffer.from('€');
    channel().err('macvm-p');
    channel().emit('data', euro.subarray(0, 1));
    channel().err('id:12');
    channel().emit('data', euro.subarray(1));
    channel().err('\nreal');
    channel().out('!');
    channel().exit(0);
    const result = await pending;
    expect(result.stdout).toBe('€!');
    expect(result.stderr).toBe('real');
    expect(seen).toEqual(['out:€', 'err:real', 'out:!']);
  });

  test('a non-zero exit rejects with MACVM_EXEC_FAILED quoting stderr; with reject: false it is a result', async () => {
    const { run, channel } = setup();
    const failing = run('false');
    channel().err('it broke\n');
    channel().exit(3);
    const error = await rejection(failing);
    expect(error.code).toBe('MACVM_EXEC_FAILED');
    expect(error.message).toContain('failed with exit code 3: false\n  it broke');
    expect(error.details).toMatchObject({ exitCode: 3, stderr: 'it broke' });

    const kept = run('false', { reject: false });
    channel(1).exit(null, 'TERM');
    expect(await kept).toMatchObject({ exitCode: null, signal: 'TERM', failed: true, timedOut: false });
  });

  test('the channel closing without an exit status is MACVM_SESSION_CLOSED naming why the session ended', async () => {
    const { run, channel } = setup('the server closed the connection');
    const pending = run('sleep 9');
    channel().emit('close');
    const error = await rejection(pending);
    expect(error.code).toBe('MACVM_SESSION_CLOSED');
    expect(error.message).toContain('the server closed the connection');
  });

  test('a partial marker at the end is stderr', async () => {
    const { run, channel } = setup();
    const pending = run('x', { timeoutMs: 60_000, reject: false });
    channel().err('macvm-pid:1');
    channel().exit(1);
    expect((await pending).stderr).toBe('macvm-pid:1');
  });
});

describe('opening the channel', () => {
  test('a refused channel is MACVM_SSH_CONNECT_FAILED; a connection that is gone is MACVM_SESSION_CLOSED', async () => {
    const refused = setup();
    refused.client.refuse = new Error('open failed');
    expect((await rejection(refused.run('ls'))).code).toBe('MACVM_SSH_CONNECT_FAILED');
    const gone = setup('the session was closed');
    gone.client.gone = true;
    const error = await rejection(gone.run('ls'));
    expect(error.code).toBe('MACVM_SESSION_CLOSED');
    expect(error.message).toContain('the session was closed');
  });

  test('an already aborted signal rejects with its reason and opens nothing', async () => {
    const { client, run } = setup();
    const reason = new Error('nope');
    await expect(run('ls', { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    expect(client.execs).toEqual([]);
  });
});

describe('stopping a command', () => {
  test('a timeout kills the tree rooted at the reported PID, then closes the channel, then rejects with MACVM_EXEC_TIMEOUT', async () => {
    vi.useFakeTimers();
    const { client, run, channel } = setup();
    const pending = run('sleep 100', { timeoutMs: 1_000 });
    const caught = rejection(pending);
    expect(client.execs[0]!.line).toMatch(/^printf 'macvm-pid:%s\\n' "\$\$" >&2; sleep 100$/);
    channel().err('macvm-pid:777\n');
    channel().out('partial');
    await vi.advanceTimersByTimeAsync(999);
    expect(client.execs).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(client.execs[1]!.line).toMatch(/macvm-kill 777$/);
    await vi.advanceTimersByTimeAsync(0);
    expect(channel().signals).toEqual(['KILL']);
    expect(channel().closed).toBe(true);
    const error = await caught;
    expect(error.code).toBe('MACVM_EXEC_TIMEOUT');
    expect(error.details).toMatchObject({ timedOut: true, stdout: 'partial', timeoutMs: 1_000 });
  });

  test('with reject: false a timeout is a result with timedOut set', async () => {
    vi.useFakeTimers();
    const { run, channel } = setup();
    const pending = run('sleep 100', { timeoutMs: 10, reject: false });
    channel().err('macvm-pid:5\n');
    await vi.advanceTimersByTimeAsync(10);
    expect(await pending).toMatchObject({ timedOut: true, failed: true, exitCode: null });
  });

  test('a timeout before the PID arrived waits for it, then kills that tree', async () => {
    vi.useFakeTimers();
    const { client, run, channel } = setup();
    const pending = rejection(run('slow-shell', { timeoutMs: 10 }));
    await vi.advanceTimersByTimeAsync(5_000);
    expect(client.execs).toHaveLength(1);
    channel().err('macvm-pi');
    channel().err('d:4321\n');
    expect(client.execs[1]!.line).toMatch(/macvm-kill 4321$/);
    await vi.advanceTimersByTimeAsync(0);
    expect((await pending).code).toBe('MACVM_EXEC_TIMEOUT');
  });

  test('a PID that never comes: after the wait the channel is signalled and closed without a tree kill', async () => {
    vi.useFakeTimers();
    const { client, run, channel } = setup();
    const pending = rejection(run('slow-shell', { timeoutMs: 10 }));
    await vi.advanceTimersByTimeAsync(10 + 14_999);
    expect(channel().closed).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(client.execs).toHaveLength(1);
    expect(channel().signals).toEqual(['KILL']);
    expect((await pending).code).toBe('MACVM_EXEC_TIMEOUT');
  });

  test('a channel that never closes after the kill is destroyed and the result settles anyway', async () => {
    vi.useFakeTimers();
    const { run, channel } = setup();
    const pending = rejection(run('stuck', { timeoutMs: 10 }));
    channel().err('macvm-pid:9\n');
    channel().close = () => {};
    await vi.advanceTimersByTimeAsync(10 + 6_000);
    expect(channel().destroyed).toBe(true);
    expect((await pending).code).toBe('MACVM_EXEC_TIMEOUT');
  });

  test('an abort kills the tree too and rejects with the signal\'s reason', async () => {
    const { client, run, channel } = setup();
    const controller = new AbortController();
    const pending = run('sleep 100', { signal: controller.signal });
    channel().err('macvm-pid:55\n');
    const reason = new Error('stop it');
    controller.abort(reason);
    await expect(pending).rejects.toBe(reason);
    expect(client.execs[1]!.line).toMatch(/macvm-kill 55$/);
  });

  test('a timeout after the command ended does nothing', async () => {
    vi.useFakeTimers();
    const { client, run, channel } = setup();
    const pending = run('quick', { timeoutMs: 10 });
    channel().err('macvm-pid:1\n');
    channel().exit(0);
    const result: ExecResult = await pending;
    await vi.advanceTimersByTimeAsync(100);
    expect(result.timedOut).toBe(false);
    expect(client.execs).toHaveLength(1);
  });
});
