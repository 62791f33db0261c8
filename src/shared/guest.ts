/**
 * What a guest is and how to log in to it: the words both sides speak. The providers (src/vm)
 * produce them, the guest session (src/guest) consumes them, so they live below both.
 */
export type GuestOS = 'linux' | 'macos';
export type GuestArch = 'x86_64' | 'aarch64';

/** How to reach a guest's SSH server; the host key is pinned, never learned. */
export interface SshCredentials {
  user: string;
  /** Path to a private key file (mode 0600). */
  privateKeyPath?: string;
  /** A password, for guests such as Tart's stock images (admin/admin). Never logged. */
  password?: string;
  /**
   * The guest's host public key in OpenSSH form ("ssh-ed25519 AAAA..."), pinned.
   * A guest presenting any other key is refused with MACVM_HOST_KEY_MISMATCH.
   */
  hostKey?: string;
  /**
   * Set by a provider when its settings say `insecureAcceptAnyHostKey: true` and no key is
   * pinned (orchard, tart): the connection then accepts whatever host key the guest presents.
   */
  insecureAcceptAnyHostKey?: boolean;
}
