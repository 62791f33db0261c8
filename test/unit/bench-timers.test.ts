import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { hostNode } from '../../src/bench/node-runtime.js';
import { localShell } from '../../src/bench/shell.js';
import { adjtimexTimer, chooseCommandTimer, dateTimer, nodeTimer, parseTimerOutput, perlTimer, probeAdjtimex, probeTimer, type CommandTimer } from '../../src/bench/timers.js';

// Every timer script runs for real here (perl, GNU date, busybox adjtimex, node are on this
// host; CI installs busybox-static). What is checked is the contract, not speed: one marker
// line, the command's exit code passed through, its output kept out of stdout in the log.
const dir = mkdtempSync(join(tmpdir(), 'macvm-bench-timers-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const shell = localShell();

const timers: Array<[string, () => Promise<CommandTimer>]> = [
  ['perl', async () => perlTimer()],
  ['date-ns', async () => dateTimer()],
  ['adjtimex', async () => adjtimexTimer((await probeAdjtimex(shell))!)],
  ['node', async () => nodeTimer(hostNode().command)],
];

describe.each(timers)('%s timer', (kind, make) => {
  test('one marker line, exit code passed through, output in the log, quoting survives', async () => {
    const timer = await make();
    expect(timer.kind).toBe(kind);
    const log = join(dir, `${kind}.log`);
    const ok = await shell.exec(timer.script(`printf '%s\\n' "it's $WHO"; exit 0`, log), { env: { WHO: 'me' } });
    const measured = parseTimerOutput(ok.stdout);
    expect(measured).toBeDefined();
    expect(measured!.exitCode).toBe(0);
    expect(measured!.ms).toBeGreaterThan(0);
    expect(ok.stdout).not.toContain("it's me");
    expect(readFileSync(log, 'utf8')).toBe("it's me\n");
    const failed = await shell.exec(timer.script('echo oops >&2; exit 7', log));
    expect(parseTimerOutput(failed.stdout)?.exitCode).toBe(7);
    expect(readFileSync(log, 'utf8')).toBe('oops\n');
  });
});

describe('timer choice', () => {
  test('probes accept real clocks and refuse a date without %N (busybox prints a literal N)', async () => {
    expect(await probeTimer(shell, 'date-ns')).toBe(true);
    const busyboxDate: typeof shell = { ...shell, exec: (command, options) => shell.exec(command.replace(/^date /, 'busybox date '), options) };
    expect(await probeTimer(busyboxDate, 'date-ns')).toBe(false);
  });

  test('the first timer both sides have wins; node is only asked for when nothing else works', async () => {
    let askedForNode = false;
    const chosen = await chooseCommandTimer(shell, shell, async () => {
      askedForNode = true;
      return undefined;
    });
    expect(chosen.host.kind).toBe('perl');
    expect(chosen.guest.kind).toBe('perl');
    expect(askedForNode).toBe(false);
  });
});
