import type { Client, ClientChannel } from 'ssh2';
import { quoteShellWord } from './shell-quote.js';

/** How long the tree kill may take before the command is given up on anyway. */
export const KILL_GRACE_MS = 3_000;

/**
 * ssh2's channel.signal() sends nothing once our side has sent EOF (it checks that
 * the channel is still writable), and exec always sends EOF after stdin. A signal
 * request is legal on a half-closed channel (RFC 4254 §6.9 only needs it open), so
 * it goes out through the protocol object directly.
 */
export function sendSignal(channel: ClientChannel, name: string): void {
  const internals = channel as unknown as {
    outgoing?: { id?: number; state?: string };
    _client?: { _protocol?: { signal?: (id: number, signal: string) => void } };
  };
  const id = internals.outgoing?.id;
  const protocol = internals._client?._protocol;
  try {
    if (id !== undefined && (internals.outgoing?.state === 'open' || internals.outgoing?.state === 'eof') && typeof protocol?.signal === 'function') protocol.signal(id, name);
    else channel.signal(name);
  } catch {
    // The connection is going away; closing the channel is all that is left to do.
  }
}

/**
 * Kills the process tree rooted at `pid` (the command's login shell). Not a process
 * group: dropbear puts every command of a connection in ONE group led by its own
 * per-connection process, so killing "the group" either misses (the shell leads no
 * group) or takes the SSH connection down with it. The tree is found from `ps` and
 * stopped first, repeatedly until it stops growing, so nothing can fork or escape to
 * init between the listing and the kill; then all of it is killed. Never rejects:
 * after KILL_GRACE_MS it resolves whether or not the kill has run.
 */
export function killRemoteTree(client: Client, pid: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, KILL_GRACE_MS);
    timer.unref();
    const done = (): void => {
      clearTimeout(timer);
      resolve();
    };
    try {
      // Run by /bin/sh explicitly: macOS's login shell is zsh, which does not split $tree into words.
      client.exec(`exec /bin/sh -c ${quoteShellWord(KILL_TREE_SCRIPT)} macvm-kill ${pid}`, (error, channel) => {
        if (error) return done();
        channel.on('close', done);
        channel.on('error', done);
        channel.resume();
        channel.stderr.resume();
        channel.end();
      });
    } catch {
      done();
    }
  });
}

/**
 * POSIX sh, for busybox (ash, ps, awk) and macOS (/bin/sh, BSD ps, awk) alike: both
 * know `ps -A -o pid= -o ppid=`. $1 is the root PID; a root already gone yields an
 * empty tree, so a stale PID never kills anything.
 */
const KILL_TREE_SCRIPT = `root=$1
tree() {
  ps -A -o pid= -o ppid= 2>/dev/null | awk -v root="$root" '
    { parent[$1] = $2 }
    END {
      if (!(root in parent)) exit
      keep[root] = 1
      do { grew = 0; for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; grew = 1 } } while (grew)
      for (p in keep) print p
    }' | sort -n
}
before=; now=$(tree); rounds=0
while [ -n "$now" ] && [ "$now" != "$before" ] && [ "$rounds" -lt 50 ]; do
  kill -STOP $now 2>/dev/null
  before=$now; now=$(tree); rounds=$((rounds + 1))
done
[ -n "$now" ] && kill -KILL $now 2>/dev/null
true`;
