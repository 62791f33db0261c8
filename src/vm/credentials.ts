/**
 * The SSH credentials providers build from their settings, shared here so that no provider
 * imports another: Tart-style image logins with a pinned host key (tart, vz, orchard), and the
 * host-key normalisation every provider that pins a key applies (ssh, qemu, orchard).
 */
import { MacvmError, messageOf } from '../errors.js';
import type { ProviderName, SshCredentials } from './types.js';

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

export function pinnedCredentials(provider: ProviderName, imageRef: string, settings: CredentialSettings): SshCredentials {
  const image = settings.images?.[imageRef] ?? settings.images?.['*'] ?? {};
  // The config path the key lives at (macvm.config.ts: images.<name>.ssh.hostKey).
  const key = `images["${imageRef}"].ssh.hostKey`;
  if (!image.hostKey && !settings.insecureAcceptAnyHostKey) {
    throw new MacvmError('MACVM_CONFIG_INVALID', `The ${provider} image "${imageRef}" has no pinned SSH host key.`, {
      hint:
        `Boot it once, run \`ssh-keyscan -t ed25519 <guest address>\` (for Tart: \`ssh-keyscan -t ed25519 $(tart ip <vm>)\`), and set ` +
        `${key} in macvm.config.ts to the "ssh-ed25519 AAAA..." part — or, for throwaway machines only, set ${provider}.insecureAcceptAnyHostKey: true.`,
    });
  }
  const hostKey = image.hostKey ? configuredHostKey(image.hostKey, key) : undefined;
  return {
    user: image.user ?? TART_DEFAULT_CREDENTIALS.user,
    // With a key file, no default password: admin/admin is only the stock images' login.
    password: image.privateKeyPath ? image.password : (image.password ?? TART_DEFAULT_CREDENTIALS.password),
    privateKeyPath: image.privateKeyPath,
    hostKey,
    ...(hostKey ? {} : { insecureAcceptAnyHostKey: true }),
  };
}

const KEY_TYPES = /^(ssh-ed25519|ssh-rsa|rsa-sha2-256|rsa-sha2-512|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)$/;

/** "ssh-ed25519 AAAA... comment" or an ssh-keyscan line → "ssh-ed25519 AAAA...". */
export function normaliseHostKey(value: unknown, host = '<host>', port = 22): string {
  const howToGet = hostKeyHint(host, port);
  if (value === undefined || value === null || value === '') {
    throw invalidHostKey('is missing: macvm pins the machine\'s host key and never trusts a key on first use', howToGet);
  }
  if (typeof value !== 'string') throw invalidHostKey('must be a string like "ssh-ed25519 AAAA..."', howToGet);
  let fields = value.trim().split(/\s+/);
  // An ssh-keyscan / known_hosts line starts with the host name(s).
  if (fields.length >= 3 && !KEY_TYPES.test(fields[0]!) && KEY_TYPES.test(fields[1]!)) fields = fields.slice(1);
  const [type, blob] = fields;
  if (!type || !KEY_TYPES.test(type) || !blob) {
    throw invalidHostKey(`is not an OpenSSH public key (expected "ssh-ed25519 AAAA...", got "${value.slice(0, 40)}")`, howToGet);
  }
  // The base64 blob starts with its own key type (a length-prefixed string): a pasted key
  // that was cut short or belongs to another type fails here, not at connect time.
  const bytes = Buffer.from(blob, 'base64');
  const length = bytes.length >= 4 ? bytes.readUInt32BE(0) : -1;
  const embedded = length > 0 && length < 64 && bytes.length >= 4 + length ? bytes.subarray(4, 4 + length).toString('latin1') : '';
  const expected = type.startsWith('rsa-sha2-') ? 'ssh-rsa' : type;
  if (embedded !== expected) {
    throw invalidHostKey(`has a ${type} prefix but its key data is ${embedded ? `a ${embedded} key` : 'not valid base64 key data'}`, howToGet);
  }
  return `${expected} ${blob}`;
}

/**
 * A host key from the config, normalised, or MACVM_CONFIG_INVALID naming the config path it was
 * set at (`key`) and what is wrong with it: the one check every provider's pinned keys go through.
 */
export function configuredHostKey(value: string, key: string, hint?: string): string {
  try {
    return normaliseHostKey(value);
  } catch (error) {
    throw new MacvmError('MACVM_CONFIG_INVALID', `${key} is not an OpenSSH public key ("ssh-ed25519 AAAA..."): ${messageOf(error).split('\n')[0]}`, { hint, details: { key } });
  }
}

export function hostKeyHint(host: string, port = 22): string {
  const portFlag = port === 22 ? '' : ` -p ${port}`;
  return (
    `Get it with \`ssh-keyscan -t ed25519${portFlag} ${host}\` and set ssh.hostKey to the "ssh-ed25519 AAAA..." part. ` +
    `Verify its fingerprint out of band before trusting it: compare \`ssh-keyscan -t ed25519${portFlag} ${host} | ssh-keygen -lf -\` ` +
    `with \`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub\` run on the machine itself (console, MDM, or the provider's dashboard).`
  );
}

function invalidHostKey(problem: string, hint?: string): MacvmError {
  return new MacvmError('MACVM_CONFIG_INVALID', `ssh provider: "hostKey" ${problem}.`, { hint, details: { key: 'hostKey' } });
}
