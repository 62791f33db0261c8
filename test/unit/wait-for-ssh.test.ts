import { describe, expect, it } from 'vitest';
import { isMacvmError } from '../../src/errors.js';
import type { GuestSession } from '../../src/guest/types.js';
import { forSsh } from '../../src/machine/wait.js';
import { Deadline } from '../../src/shared/deadline.js';
import type { RunningVM } from '../../src/vm/types.js';

/** A session that records what is asked of it; every command fails, as a broken guest's would. */
function session(closed: boolean): { session: GuestSession; commands: string[] } {
  const commands: string[] = [];
  const fake = {
    host: '127.0.0.1',
    port: 2222,
    closed,
    exec: async (command: string) => {
      commands.push(command);
      throw new Error('no command should run');
    },
  } as unknown as GuestSession;
  return { session: fake, commands };
}

describe('forSsh()', () => {
  const vm = {} as RunningVM;

  it('passes on the authenticated session it is handed, without a round trip to the guest', async () => {
    const { session: open, commands } = session(false);
    await expect(forSsh().wait({ vm, session: open, deadline: new Deadline(60_000) })).resolves.toBeUndefined();
    expect(commands).toEqual([]);
  });

  it('fails when the guest closed the connection after the login', async () => {
    const { session: closed } = session(true);
    const error = await forSsh()
      .wait({ vm, session: closed, deadline: new Deadline(60_000) })
      .catch((e: unknown) => e);
    expect(isMacvmError(error, 'MACVM_SSH_CONNECT_FAILED')).toBe(true);
    expect((error as Error).message).toMatch(/127\.0\.0\.1:2222/);
  });
});
