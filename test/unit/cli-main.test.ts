/**
 * The CLI's front door (src/runner/cli.ts) and the error paths a person typing commands
 * meets first: help routing, unknown verbs, names that must not become paths, and messages
 * without doubled prefixes or stack traces. Everything here runs against a throwaway
 * MACVM_HOME; nothing boots.
 */
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { formatError, main } from '../../src/runner/cli.js';
import { ensurePrivateDir } from '../../src/vm/home.js';

let scratch: string;
let savedHome: string | undefined;

beforeEach(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'macvm-cli-'));
  savedHome = process.env.MACVM_HOME;
  process.env.MACVM_HOME = join(scratch, 'home');
});
afterEach(async () => {
  if (savedHome === undefined) delete process.env.MACVM_HOME;
  else process.env.MACVM_HOME = savedHome;
  await rm(scratch, { recursive: true, force: true });
});

async function cli(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  err.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await main(argv, { stdout: out as unknown as typeof process.stdout, stderr: err as unknown as typeof process.stderr });
  return { code, stdout, stderr };
}

describe('help and verbs', () => {
  it('a --help after `--` belongs to the guest command: vm exec goes looking for the VM instead of printing help', async () => {
    const { code, stdout, stderr } = await cli('vm', 'exec', 'macvm-nope', '--', 'ls', '--help');
    expect(stdout).not.toContain('Usage: macvm vm exec');
    expect(code).toBe(1);
    expect(stderr).toContain('No VM "macvm-nope"');
  });

  it('a group asked for help lists its verbs and exits 0; `help <group>` does the same', async () => {
    for (const argv of [['image', '--help'], ['vm', '-h'], ['help', 'vm']]) {
      const { code, stdout, stderr } = await cli(...argv);
      expect(code).toBe(0);
      expect(stderr).toBe('');
      expect(stdout).toContain(`${argv.includes('image') ? 'image pull' : 'vm start'}`);
    }
    expect((await cli('help', 'vm')).stdout).not.toContain('image pull');
    expect((await cli('help', 'image', 'pull')).stdout).toContain('Usage: macvm image pull');
  });

  it('names an unknown verb inside a group, and an option given before any command', async () => {
    const frob = await cli('image', 'frob');
    expect(frob.code).toBe(2);
    expect(frob.stderr).toContain('unknown command "image frob"');
    const option = await cli('--frob');
    expect(option.code).toBe(2);
    expect(option.stderr).toContain('unknown option "--frob"');
  });
});

describe('names that become paths', () => {
  it('image rm refuses a name that leaves the image store, and deletes nothing', async () => {
    const keep = join(scratch, 'keep');
    await mkdir(keep, { recursive: true });
    await writeFile(join(keep, 'data'), 'precious');
    await mkdir(join(scratch, 'home', 'images', 'real'), { recursive: true });
    for (const name of ['x/../../..', '..', '.', '', 'real/..', '/etc']) {
      const { code, stderr } = await cli('image', 'rm', name);
      expect(code, name).toBe(2);
      expect(stderr, name).toContain('MACVM_BAD_ARGUMENT');
    }
    expect((await stat(join(keep, 'data'))).isFile()).toBe(true);
    expect((await stat(join(scratch, 'home', 'images', 'real'))).isDirectory()).toBe(true);
  });

  it('image rm and image push name the image a typo was close to', async () => {
    await mkdir(join(scratch, 'home', 'images', 'linux-test'), { recursive: true });
    for (const argv of [['image', 'rm', 'linux-tset'], ['image', 'push', 'linux-tset', '127.0.0.1:1/team/x:y']]) {
      const { code, stderr } = await cli(...argv);
      expect(code, argv.join(' ')).toBe(1);
      expect(stderr).toContain('No image "linux-tset".');
      expect(stderr).toContain('Did you mean "linux-test"?');
    }
    expect((await stat(join(scratch, 'home', 'images', 'linux-test'))).isDirectory()).toBe(true);
  });

  it('vm ids are checked the same way', async () => {
    const { code, stderr } = await cli('vm', 'rm', '../images');
    expect(code).toBe(2);
    expect(stderr).toContain('is not a VM id');
  });
});

describe('messages', () => {
  it('says "macvm <verb>:" once, and keeps only the first sentence of node\'s own parse error', async () => {
    const { stderr } = await cli('report', '--bogus');
    expect(stderr.startsWith('macvm report: Unknown option')).toBe(true);
    const pulled = await cli('image', 'pull', '--frob', 'x');
    expect(pulled.stderr).not.toContain('To specify a positional argument');
  });

  it('tells how to pass a negative value', async () => {
    const { code, stderr } = await cli('bench', '--fail-on-regression', '-1');
    expect(code).toBe(2);
    expect(stderr).toContain('--fail-on-regression=<value>');
  });

  it('checks a bad --timeout before looking for the VM', async () => {
    for (const verb of ['stop', 'rm']) {
      const { code, stderr } = await cli('vm', verb, 'macvm-nope', '--timeout', '0');
      expect(code).toBe(2);
      expect(stderr).toContain('--timeout must be a positive integer');
    }
  });

  it('a bad --disk is a bad argument (exit 2), not a config problem', async () => {
    const { code, stderr } = await cli('image', 'create', 'mac', '--ipsw', 'latest', '--disk', 'huge');
    expect(code).toBe(2);
    expect(stderr).toContain('MACVM_BAD_ARGUMENT');
  });

  it('an unusable MACVM_HOME is named, with what to do, not a stack trace', async () => {
    const file = join(scratch, 'a-file');
    await writeFile(file, '');
    process.env.MACVM_HOME = join(file, 'home');
    const { code, stderr } = await cli('image', 'pull', '127.0.0.1:1/x/y:z');
    expect(code).toBe(1);
    expect(stderr).toContain('MACVM_CONFIG_INVALID');
    expect(stderr).toContain('MACVM_HOME');
    expect(stderr).not.toMatch(/\n\s+at /);
  });

  it.runIf(process.platform === 'linux')('a MACVM_HOME under /proc fails at once (Node 20\'s own recursive mkdir never returns there)', async () => {
    process.env.MACVM_HOME = '/proc/macvm-no-such-home';
    const { code, stderr } = await cli('test', 'specs');
    expect(code).toBe(1);
    expect(stderr).toContain("macvm's home /proc/macvm-no-such-home is not a directory it can use (ENOENT)");
  }, 20_000);

  it('a private dir under a file is named with its own path', async () => {
    const file = join(scratch, 'a-file');
    await writeFile(file, '');
    const error = await ensurePrivateDir(join(file, 'sessions')).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'MACVM_CONFIG_INVALID', details: { code: 'ENOTDIR' } });
    expect((error as Error).message).toContain(`${join(file, 'sessions')} is not a directory macvm can use`);
  });

  it('an error macvm did not expect prints its message, and its stack only with MACVM_DEBUG', () => {
    const saved = process.env.MACVM_DEBUG;
    delete process.env.MACVM_DEBUG;
    try {
      const text = formatError(new TypeError('boom'));
      expect(text).toContain('macvm: boom');
      expect(text).not.toMatch(/\n\s+at /);
      process.env.MACVM_DEBUG = '1';
      expect(formatError(new TypeError('boom'))).toMatch(/\n\s+at /);
    } finally {
      if (saved === undefined) delete process.env.MACVM_DEBUG;
      else process.env.MACVM_DEBUG = saved;
    }
  });

  it('macvm bench names a latest.json the table cannot print, instead of crashing in it', async () => {
    const reports = join(scratch, 'reports');
    await mkdir(join(reports, 'bench'), { recursive: true });
    const workload = { name: 'w', kind: 'command', host: { samples: [1, 2], medianMs: 1.5 }, guest: { samples: [3, 4], medianMs: 3.5 } };
    await writeFile(join(reports, 'bench', 'latest.json'), JSON.stringify({ schema: 1, runId: 'r', suite: 's', at: 'now', workloads: [workload] }));
    const { code, stderr } = await cli('bench', '--reports-dir', reports);
    expect(code).toBe(1);
    expect(stderr).toContain('ratio.median is missing');
    expect(stderr).toContain('MACVM_BENCH_INVALID');
  });

  it('macvm test refuses an option vitest does not know, instead of letting it swallow the folder after it', async () => {
    const { code, stderr } = await cli('test', '--frobnicate', 'specs');
    expect(code).toBe(2);
    expect(stderr).toContain('unknown option --frobnicate');
    expect(stderr).toContain('MACVM_BAD_ARGUMENT');
  });

  it('macvm test names a value vitest refuses as a bad argument, not as an unexpected error', async () => {
    const { code, stderr } = await cli('test', '--silent=maybe', 'specs');
    expect(code).toBe(2);
    expect(stderr).toContain('--silent=maybe');
    expect(stderr).toContain('MACVM_BAD_ARGUMENT');
    expect(stderr).not.toContain('not an error macvm expected');
  });
});
