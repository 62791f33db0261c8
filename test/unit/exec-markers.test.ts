import { describe, expect, test } from 'vitest';
import { endPidScan, scanStderr, startPidScan, withPidReport, type PidScan } from '../../src/guest/exec-markers.js';

/** Feeds the chunks in order and collects what a command would see: stderr text, the PID, and how often a decision was announced. */
function feed(chunks: Array<string | Buffer>, options: { expect?: boolean; maxBytes?: number; end?: boolean } = {}) {
  let scan: PidScan = startPidScan(options.expect ?? true);
  const stderr: Buffer[] = [];
  let decisions = 0;
  for (const chunk of chunks) {
    const step = scanStderr(scan, Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk), options.maxBytes);
    expect(step.stderr.every((piece) => piece.length > 0)).toBe(true);
    stderr.push(...step.stderr);
    if (step.decidedNow) decisions++;
    scan = step.scan;
  }
  if (options.end) {
    const step = endPidScan(scan);
    expect(step.decidedNow).toBe(false);
    stderr.push(...step.stderr);
    scan = step.scan;
  }
  return { scan, stderr: Buffer.concat(stderr).toString('utf8'), decisions };
}

/** Every way to cut `text` into two chunks. */
function splitsOf(text: string): Array<[string, string]> {
  return Array.from({ length: text.length + 1 }, (_, at) => [text.slice(0, at), text.slice(at)]);
}

describe('the PID marker scan', () => {
  test('the command line prints the marker on stderr before the command, which a shell really does', async () => {
    const { execFileSync } = await import('node:child_process');
    const wire = withPidReport('echo out; echo err >&2');
    const stderr = execFileSync('sh', ['-c', `(${wire}) 2>&1 >/dev/null`]).toString();
    const result = feed([stderr]);
    expect(result.scan).toEqual({ kind: 'decided', pid: expect.any(Number) });
    expect(result.stderr).toBe('err\n');
  });

  test('a command that prints no marker is decided from the outset and passes stderr on untouched', () => {
    const result = feed(['macvm-pid:42\n', 'more'], { expect: false });
    expect(result).toEqual({ scan: { kind: 'decided', pid: undefined }, stderr: 'macvm-pid:42\nmore', decisions: 0 });
  });

  test('the marker line is taken out of stderr, and the decision is announced once', () => {
    expect(feed(['macvm-pid:4242\n'])).toEqual({ scan: { kind: 'decided', pid: 4242 }, stderr: '', decisions: 1 });
  });

  test('a chunk boundary anywhere inside the marker (or right around it) changes nothing', () => {
    const text = 'motd line\nmacvm-pid:31337\nuser stderr\n';
    for (const [first, second] of splitsOf(text)) {
      expect(feed([first, second]), `split at ${first.length}`).toEqual({ scan: { kind: 'decided', pid: 31337 }, stderr: 'motd line\nuser stderr\n', decisions: 1 });
    }
  });

  test('one byte at a time changes nothing either', () => {
    const bytes = [...Buffer.from('noise\nmacvm-pid:7\nafter')].map((byte) => Buffer.from([byte]));
    expect(feed(bytes)).toEqual({ scan: { kind: 'decided', pid: 7 }, stderr: 'noise\nafter', decisions: 1 });
  });

  test('shell start-up noise before the marker is passed on in order as soon as its line is complete', () => {
    let scan = startPidScan(true);
    const first = scanStderr(scan, Buffer.from('bash: warning one\nbash: warn'));
    expect(first.stderr.map(String)).toEqual(['bash: warning one\n']);
    expect(first.decidedNow).toBe(false);
    scan = first.scan;
    const second = scanStderr(scan, Buffer.from('ing two\nmacvm-pid:99\ncommand says hi\n'));
    expect(second.stderr.map(String)).toEqual(['bash: warning two\n', 'command says hi\n']);
    expect(second.scan).toEqual({ kind: 'decided', pid: 99 });
    expect(second.decidedNow).toBe(true);
  });

  test('lines that only look like the marker are ordinary stderr, and the scan goes on', () => {
    const lookalikes = 'macvm-pid:\nmacvm-pid:12x\nmacvm-pid: 12\n xmacvm-pid:12\nmacvm-pid:12\r\nmacvm-pid:-1\n';
    const result = feed([lookalikes, 'macvm-pid:5\n']);
    expect(result).toEqual({ scan: { kind: 'decided', pid: 5 }, stderr: lookalikes, decisions: 1 });
  });

  test('after the marker, the same text printed by the command itself is kept', () => {
    const result = feed(['macvm-pid:5\nmacvm-pid:6\n', 'macvm-pid:7\n']);
    expect(result).toEqual({ scan: { kind: 'decided', pid: 5 }, stderr: 'macvm-pid:6\nmacvm-pid:7\n', decisions: 1 });
  });

  test('no marker within the budget: the scan gives up once, without a PID, and nothing held back is lost', () => {
    const result = feed(['x'.repeat(30), 'y'.repeat(30)], { maxBytes: 50 });
    expect(result).toEqual({ scan: { kind: 'decided', pid: undefined }, stderr: 'x'.repeat(30) + 'y'.repeat(30), decisions: 1 });
    const lines = feed(['line\n'.repeat(9), 'line\n', 'line\n', 'macvm-pid:1\n'], { maxBytes: 50 });
    expect(lines).toEqual({ scan: { kind: 'decided', pid: undefined }, stderr: 'line\n'.repeat(11) + 'macvm-pid:1\n', decisions: 1 });
  });

  test('exactly at the budget the scan still waits', () => {
    const result = feed(['x'.repeat(50)], { maxBytes: 50 });
    expect(result.scan.kind).toBe('scanning');
    expect(result.stderr).toBe('');
  });

  test('the command ending before a whole marker line arrived: the partial text is real stderr', () => {
    for (const [partial] of splitsOf('macvm-pid:123')) {
      expect(feed([partial], { end: true })).toEqual({ scan: { kind: 'decided', pid: undefined }, stderr: partial, decisions: 0 });
    }
    expect(feed(['warning\nmacvm-pid:1'], { end: true }).stderr).toBe('warning\nmacvm-pid:1');
  });

  test('ending after the decision adds nothing', () => {
    expect(feed(['macvm-pid:8\nbye'], { end: true })).toEqual({ scan: { kind: 'decided', pid: 8 }, stderr: 'bye', decisions: 1 });
  });

  test('bytes that are not UTF-8, or a character split across chunks, come through byte-exact', () => {
    const euro = Buffer.from('€\n');
    const bytes = Buffer.concat([Buffer.from([0xff, 0xfe, 0x0a]), Buffer.from('macvm-pid:3\n'), euro]);
    let scan = startPidScan(true);
    const out: Buffer[] = [];
    for (const piece of [bytes.subarray(0, 2), bytes.subarray(2, 17), bytes.subarray(17)]) {
      const step = scanStderr(scan, piece);
      out.push(...step.stderr);
      scan = step.scan;
    }
    expect(Buffer.concat(out)).toEqual(Buffer.concat([Buffer.from([0xff, 0xfe, 0x0a]), euro]));
    expect(scan).toEqual({ kind: 'decided', pid: 3 });
  });
});
