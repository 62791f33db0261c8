import { MacvmError } from '../../errors.js';
import type { ProviderName, SshCredentials } from '../types.js';

/**
 * SSH credentials for Tart-style macOS images (used by the tart and vz providers: vz boots
 * the same bundles). Cirrus Labs' images log in as admin/admin; the guest's host key is
 * pinned per image, never learned on first use — unless `insecureAcceptAnyHostKey` is set.
 */
export interface ImageSshSettings {
  hostKey?: string;
  user?: string;
  password?: string;
  privateKeyPath?: string;
}

export interface CredentialSettings {
  /** Per image name; "*" applies to every image. */
  images?: Record<string, ImageSshSettings>;
  insecureAcceptAnyHostKey?: boolean;
}

/** Tart's documented defaults for its cirruslabs images. */
export const TART_DEFAULT_CREDENTIALS = { user: 'admin', password: 'admin' } as const;

const OPENSSH_KEY = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,2}$/;

export function pinnedCredentials(provider: ProviderName, imageRef: string, settings: CredentialSettings): SshCredentials {
  const image = settings.images?.[imageRef] ?? settings.images?.['*'] ?? {};
  const key = `providers.${provider}.images["${imageRef}"].hostKey`;
  if (!image.hostKey && !settings.insecureAcceptAnyHostKey) {
    throw new MacvmError('MACVM_CONFIG_INVALID', `The ${provider} image "${imageRef}" has no pinned SSH host key.`, {
      hint:
        `Boot it once, run \`ssh-keyscan -t ed25519 <guest address>\` (for Tart: \`ssh-keyscan -t ed25519 $(tart ip <vm>)\`), and set ` +
        `${key} to the "ssh-ed25519 AAAA..." part — or set insecureAcceptAnyHostKey: true for throwaway use.`,
    });
  }
  if (image.hostKey && !OPENSSH_KEY.test(image.hostKey.trim())) {
    throw new MacvmError('MACVM_CONFIG_INVALID', `${key} is not an OpenSSH public key ("ssh-ed25519 AAAA...").`);
  }
  return {
    user: image.user ?? TART_DEFAULT_CREDENTIALS.user,
    // With a key file, no default password: admin/admin is only the stock images' login.
    password: image.privateKeyPath ? image.password : (image.password ?? TART_DEFAULT_CREDENTIALS.password),
    privateKeyPath: image.privateKeyPath,
    hostKey: image.hostKey?.trim(),
    ...(image.hostKey ? {} : { insecureAcceptAnyHostKey: true }),
  };
}
