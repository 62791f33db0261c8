import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { localShell, shellWord } from '../../src/bench/shell.js';
import { cpuWrapped, dateTimer, parseCpuOutput, parseTimerOutput, probeCommandCpu } from '../../src/bench/timers.js';

// The CPU-time wrapper runs for real in this host's sh (Linux, /proc present). Checked: the
// contract (a CPU line, the exit code and output untouched, children's ticks added), never a time.
const dir = mkdtempSync(join(tmpdir(), 'macvm-bench-cpu-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const shell = localShell();

describe('CPU time beside wall time for commands', () => {
  test('the line reads as own ns plus children ticks (1/100 s)', () => {
    expect(parseCpuOutput('macvm-bench-cpu 1500000 3 1\n')).toBeCloseTo(1.5 + 40, 9);
    // No /proc (macOS): the trap writes empty fields, which is "not measured", not 0.
    expect(parseCpuOutput('macvm-bench-cpu   \n')).toBeUndefined();
  });

  test('inside a timer: exit code and output untouched, CPU line in its file, env and quoting survive', async () => {
    const cpuFile = join(dir, 'cpu');
    const log = join(dir, 'out.log');
    const command = `printf '%s\\n' "it's $WHO"; i=0; while [ $i -lt 500 ]; do i=$((i+1)); done; exit 4`;
    const result = await shell.exec(`${dateTimer().script(cpuWrapped(command, cpuFile), log)}; cat ${shellWord(cpuFile)}`, { env: { WHO: 'me' } });
    expect(parseTimerOutput(result.stdout)).toMatchObject({ exitCode: 4 });
    expect(parseCpuOutput(result.stdout)).toBeGreaterThan(0);
    expect(readFileSync(log, 'utf8')).toBe("it's me\n");
  });

  test('a command that exits from a function or a subshell failure still reports', async () => {
    const cpuFile = join(dir, 'cpu2');
    const result = await shell.exec(`sh -c ${shellWord(cpuWrapped('f() { exit 7; }; f', cpuFile))}; echo "rc $?"; cat ${shellWord(cpuFile)}`);
    expect(result.stdout).toMatch(/^rc 7$/m);
    expect(parseCpuOutput(result.stdout)).toBeDefined();
  });

  test('the probe finds /proc on this host', async () => {
    expect(await probeCommandCpu(shell, dir)).toBe(true);
  });
});
