/**
 * The orchard provider's stand-in world, shared by the orchard contract tests: the stand-in
 * controller (test/fixtures/orchard/fake-controller.ts, a real HTTP server replaying
 * cirruslabs/orchard's API) whose port-forward reaches a real sshd playing the guest.
 */
import { startFakeOrchard, type FakeOrchard, type FakeOrchardOptions, type FakeServiceAccount } from '../fixtures/orchard/fake-controller.js';
import type { Sshd } from './sshd.js';

export const ORCHARD_IMAGE = 'ghcr.io/cirruslabs/macos-sonoma-base:latest';
export const ORCHARD_TOKEN = 'tok-3f9c1a-very-secret';
/** The service account macvm is configured with: may read, create, delete and connect. */
export const MACVM_ACCOUNT: FakeServiceAccount = { name: 'macvm-ci', token: ORCHARD_TOKEN, roles: ['compute:read', 'compute:write', 'compute:connect'] };

/** A controller with macvm's account (and `others`), ORCHARD_IMAGE, and guest port 22 forwarded to `sshd`. */
export function startOrchardStandIn(sshd: Sshd, options: FakeOrchardOptions & { others?: FakeServiceAccount[] } = {}): Promise<FakeOrchard> {
  const { others = [], ...rest } = options;
  return startFakeOrchard({ serviceAccounts: [MACVM_ACCOUNT, ...others], images: [ORCHARD_IMAGE], guestPorts: { 22: sshd.port }, ...rest });
}

/** The orchard provider's settings for image `sonoma` on `fake` (the orchard definition's settings()). */
export function orchardSettings(fake: FakeOrchard, sshd: Sshd, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    controller: fake.url,
    serviceAccount: { name: MACVM_ACCOUNT.name, token: ORCHARD_TOKEN },
    images: { sonoma: { source: ORCHARD_IMAGE, user: sshd.user, privateKeyPath: sshd.privateKeyPath, hostKey: sshd.hostKey } },
    ...extra,
  };
}

/** macvm.config.ts for image `sonoma` on `fake`, as a user writes it. */
export function orchardConfig(fake: FakeOrchard, sshd: Sshd, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    provider: 'orchard',
    orchard: { controller: fake.url, serviceAccount: { name: MACVM_ACCOUNT.name, token: ORCHARD_TOKEN } },
    images: { sonoma: { source: ORCHARD_IMAGE, ssh: { user: sshd.user, privateKeyPath: sshd.privateKeyPath, hostKey: sshd.hostKey } } },
    ...extra,
  };
}
