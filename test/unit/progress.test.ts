import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createProgress } from '../../src/runner/progress.js';
import { VirtualTerminal } from '../support/virtual-terminal.js';

beforeEach(() => {
  vi.useFakeTimers({ now: new Date('2026-01-01T00:00:00Z') });
});
afterEach(() => {
  vi.useRealTimers();
});

function plainStream() {
  let text = '';
  return { stream: { write: (chunk: string) => ((text += chunk), true) } as unknown as NodeJS.WritableStream, text: () => text };
}

describe('progress on a terminal', () => {
  it('keeps one live line per suite in flight, redrawn in place, and prints finished suites for good', () => {
    const term = new VirtualTerminal(100);
    // No ticks here, so every redraw below comes from an update (throttled to one per 100 ms).
    const progress = createProgress({ stream: term as unknown as NodeJS.WritableStream, isTTY: true, env: {}, throttleMs: 100, tickMs: 60_000 });
    const a = progress.suite('checkout');
    const b = progress.suite('login');
    a.update('waiting for slot', '2/2 in use: other (pid 1)'); // t=0: drawn at once
    b.update('cloning'); // throttled: drawn at t=100
    vi.advanceTimersByTime(200);
    expect(term.screen()).toEqual(['  … checkout  waiting for slot 0.1s  2/2 in use: other (pid 1)', '  … login     cloning 0.1s']);

    a.update('booting'); // t=200
    vi.advanceTimersByTime(3000);
    b.update('ready', '3.1s'); // t=3200
    vi.advanceTimersByTime(200);
    // Still exactly two lines: the block was redrawn over itself.
    expect(term.screen()).toEqual(['  … checkout  booting 3.0s', '  … login     ready 0.0s  3.1s']);

    b.done(true, '4 passed'); // t=3400
    expect(term.screen()).toEqual(['  ✓ login  3.4s (cloning 3.2s, ready 0.2s)  4 passed', '  … checkout  booting 3.2s']);

    a.update('tearing down');
    vi.advanceTimersByTime(500);
    a.done(false, '1 failed'); // t=3900
    expect(term.screen()).toEqual([
      '  ✓ login  3.4s (cloning 3.2s, ready 0.2s)  4 passed',
      '  ✗ checkout  failed after 3.9s (waiting for slot 0.2s, booting 3.2s, tearing down 0.5s)  1 failed',
    ]);
    progress.close();
  });

  it('throttles redraws and ticks the timings while nothing changes', () => {
    const term = new VirtualTerminal();
    const progress = createProgress({ stream: term as unknown as NodeJS.WritableStream, isTTY: true, env: {}, throttleMs: 100, tickMs: 1000 });
    const suite = progress.suite('s');
    for (let i = 0; i < 50; i++) suite.update('booting', `step ${i}`);
    const writesAfterBurst = term.writes;
    expect(writesAfterBurst).toBe(1); // the first update draws at once, the other 49 wait for the throttle
    vi.advanceTimersByTime(100);
    expect(term.writes).toBe(2);
    expect(term.screen()).toEqual(['  … s  booting 0.1s  step 49']);
    // Nothing changes now; the 1 s tick (at t = 1000, 2000 ms) redraws the growing time anyway.
    vi.advanceTimersByTime(1900);
    expect(term.screen()).toEqual(['  … s  booting 2.0s  step 49']);
    progress.close();
    const closedWrites = term.writes;
    suite.update('ready');
    vi.advanceTimersByTime(5000);
    expect(term.writes).toBe(closedWrites);
  });

  it('cuts lines to the terminal width so they never wrap, and long names to 40 characters', () => {
    const term = new VirtualTerminal(40);
    const progress = createProgress({ stream: term as unknown as NodeJS.WritableStream, isTTY: true, env: {} });
    progress.suite('a very long suite name that goes on and on and on').update('booting', 'with a long detail that would wrap');
    expect(term.screen()).toHaveLength(1);
    expect([...term.screen()[0]!].length).toBeLessThanOrEqual(39);
    expect(term.screen()[0]).toMatch(/^ {2}… a very long suite name.*…$/);
    progress.close();
  });

  it('leaves the last state of unfinished suites on screen when closed', () => {
    const term = new VirtualTerminal();
    const progress = createProgress({ stream: term as unknown as NodeJS.WritableStream, isTTY: true, env: {} });
    progress.suite('x').update('running');
    vi.advanceTimersByTime(1200);
    progress.close();
    progress.close();
    expect(term.screen()).toEqual(['  … x  running 1.2s']);
  });
});

describe('progress in logs (not a TTY)', () => {
  it('writes one plain line per state change, no escape codes, repeats skipped', () => {
    const out = plainStream();
    const progress = createProgress({ stream: out.stream, isTTY: false, env: {} });
    const suite = progress.suite('checkout');
    suite.update('waiting for slot', '2/2 in use');
    vi.advanceTimersByTime(1500);
    suite.update('cloning');
    suite.update('cloning');
    vi.advanceTimersByTime(2000);
    suite.update('ready', '2.0s');
    suite.done(true, '3 passed');
    suite.update('booting');
    suite.done(false);
    expect(out.text()).toBe(
      [
        '  [+0.0s] checkout  waiting for slot  2/2 in use',
        '  [+1.5s] checkout  cloning',
        '  [+3.5s] checkout  ready  2.0s',
        '  ✓ checkout  3.5s (waiting for slot 1.5s, cloning 2.0s)  3 passed',
        '',
      ].join('\n'),
    );
    expect(out.text()).not.toContain('\x1b');
  });
});

describe('silence', () => {
  it.each([
    [{ quiet: true, env: {} }],
    [{ env: { CI: 'true' } }],
    [{ env: { CI: '1' }, isTTY: true }],
  ])('prints nothing for %j', (options) => {
    const out = plainStream();
    const progress = createProgress({ stream: out.stream, isTTY: false, ...options });
    const suite = progress.suite('s');
    suite.update('booting');
    vi.advanceTimersByTime(5000);
    suite.done(true);
    progress.close();
    expect(out.text()).toBe('');
  });

  it('is not silenced by CI=false', () => {
    const out = plainStream();
    createProgress({ stream: out.stream, isTTY: false, env: { CI: 'false' } }).suite('s').update('booting');
    expect(out.text()).toContain('booting');
  });
});
