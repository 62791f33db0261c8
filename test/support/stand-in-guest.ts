/**
 * A real sshd playing the guest of a stand-in provider whose guests answer SSH on port 22 at an
 * address of their own (vz: a DHCP lease, tart: `tart ip`): it listens on port 22 of a random
 * 127.x.y.z, so it clashes with nothing else on this host. Binding port 22 needs root (or
 * CAP_NET_BIND_SERVICE); lowPortUnavailable() says why it cannot, for a skip reason.
 */
import { randomInt } from 'node:crypto';
import { createServer } from 'node:net';
import { startSshd, type Sshd } from './sshd.js';

export const GUEST_SSH_PORT = 22;

export function randomLoopbackAddress(): string {
  return `127.${randomInt(64, 250)}.${randomInt(1, 250)}.${randomInt(2, 250)}`;
}

/** Why port 22 on a loopback address cannot be had here, or undefined when it can. */
export async function lowPortUnavailable(): Promise<string | undefined> {
  const address = randomLoopbackAddress();
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) => resolve(`cannot listen on ${address}:${GUEST_SSH_PORT} for the stand-in guest's sshd (${error.code}); run as root`));
    server.listen(GUEST_SSH_PORT, address, () => server.close(() => resolve(undefined)));
  });
}

/** The guest: a real sshd on <random loopback address>:22. */
export function startStandInGuest(): Promise<Sshd> {
  return startSshd({ address: randomLoopbackAddress(), port: GUEST_SSH_PORT });
}

/** The guest's login as macvm.config.ts writes it: images.<name>.ssh (the host key as `ssh-keyscan` gives it, without a comment). */
export function guestLogin(sshd: Sshd): { user: string; privateKeyPath: string; hostKey: string } {
  return { user: sshd.user, privateKeyPath: sshd.privateKeyPath, hostKey: sshd.hostKey.split(' ').slice(0, 2).join(' ') };
}
