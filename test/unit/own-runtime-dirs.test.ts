import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { sessionLeftovers } from '../../src/runner/gc.js';
import { removeOwnRuntimeDirsSync, STAGING_PREFIX, VM_RECORD_FILE } from '../../src/vm/runtime-dir.js';

// What a test worker leaves when it exits half-way through a clone after its runner died
// (the reliability bench's clone × SIGINT leak): its staging dir, or a clone it had just tagged.
describe('removeOwnRuntimeDirsSync (a worker exiting mid-clone)', () => {
  let home: string;
  afterEach(() => rmSync(home, { recursive: true, force: true }));

  function makeHome(): Record<string, string> {
    home = mkdtempSync(join(tmpdir(), 'macvm-own-dirs-'));
    const run = join(home, 'run');
    const dirs: Record<string, string> = {
      myStaging: join(run, `${STAGING_PREFIX}${process.pid}-abc`),
      otherStaging: join(run, `${STAGING_PREFIX}999999-abc`),
      mine: join(run, 'macvm-mine'),
      mineDetached: join(run, 'macvm-mine-detached'),
      others: join(run, 'macvm-others'),
      unreadable: join(run, 'macvm-unreadable'),
    };
    for (const dir of Object.values(dirs)) mkdirSync(dir, { recursive: true });
    const record = (pid: number, detached?: boolean) => JSON.stringify({ id: 'x', session: 's', provider: 'qemu', image: 'linux-test', owner: { pid }, ...(detached ? { detached } : {}) });
    writeFileSync(join(dirs.myStaging!, VM_RECORD_FILE), record(process.pid));
    writeFileSync(join(dirs.mine!, VM_RECORD_FILE), record(process.pid));
    writeFileSync(join(dirs.mineDetached!, VM_RECORD_FILE), record(process.pid, true));
    writeFileSync(join(dirs.others!, VM_RECORD_FILE), record(999999));
    writeFileSync(join(dirs.unreadable!, VM_RECORD_FILE), '{');
    return dirs;
  }

  it('always removes only its own staging dirs', () => {
    const dirs = makeHome();
    removeOwnRuntimeDirsSync({ ownedToo: false, home });
    expect(Object.entries(dirs).filter(([, dir]) => !existsSync(dir)).map(([name]) => name)).toEqual(['myStaging']);
  });

  it('once its runner is gone, also the clones it made, never a detached one or another process\'s', () => {
    const dirs = makeHome();
    removeOwnRuntimeDirsSync({ ownedToo: true, home });
    expect(Object.entries(dirs).filter(([, dir]) => !existsSync(dir)).map(([name]) => name)).toEqual(['myStaging', 'mine']);
  });
});

describe("sessionLeftovers (the reaper's sweep of a session)", () => {
  const record = (session: string, detached?: boolean) => ({ id: 'x', session, provider: 'qemu', image: 'linux-test', createdAt: '', ...(detached ? { detached } : {}) });
  // process.pid is alive: a staging dir named after it is not "interrupted" by the pid test alone.
  const live = process.pid;

  it("takes a staging dir of one of the session's workers even while that pid still answers, half-written vm.json or not", () => {
    const dirs = [
      { id: `${STAGING_PREFIX}${live}-a`, record: undefined },
      { id: `${STAGING_PREFIX}${live}-b`, record: record('other-session') },
    ];
    expect(sessionLeftovers(dirs, 's1', [live]).map((d) => d.id)).toEqual(dirs.map((d) => d.id));
    expect(sessionLeftovers(dirs, 's1', [])).toEqual([]);
  });

  it('takes its own VMs, never a detached one or another session\'s', () => {
    const dirs = [
      { id: 'macvm-1', record: record('s1') },
      { id: 'macvm-2', record: record('s1', true) },
      { id: 'macvm-3', record: record('s2') },
      { id: `${STAGING_PREFIX}999999-c`, record: undefined },
    ];
    expect(sessionLeftovers(dirs, 's1', []).map((d) => d.id)).toEqual(['macvm-1', `${STAGING_PREFIX}999999-c`]);
  });
});
