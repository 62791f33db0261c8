import { readFile } from 'node:fs/promises';
import { MacvmError, messageOf } from '../../errors.js';
import { normaliseHostKey } from '../credentials.js';

/**
 * The client key a qemu guest lets in is handed to it at every boot, on the kernel command
 * line: `macvm.ssh_authorized_key=<base64url of "ssh-ed25519 AAAA…">`, one token without
 * spaces. The guest's boot script (guest-files.ts rcS) writes it as root's only authorized
 * key, replacing whatever the image's disk had. So the key that logs in to a clone is the
 * one on this host, never one that came with the disk: a pulled image gets a fresh key pair
 * at install, and the pusher's key cannot log in to the puller's clones.
 *
 * The kernel command line is readable by every user in the guest (/proc/cmdline) and is in
 * qemu's argv on the host: that is fine, it is a *public* key. The private half stays in the
 * image dir on the host (0600) and never goes anywhere.
 */
export const AUTHORIZED_KEY_PARAMETER = 'macvm.ssh_authorized_key';

/** image.json's `ssh.authorizedKeyFrom` value for guests whose boot script reads the parameter. */
export const AUTHORIZED_KEY_FROM_CMDLINE = 'kernel-command-line';

/** `macvm.ssh_authorized_key=<base64url>` for a public key line ("ssh-ed25519 AAAA…", comment dropped). */
export function authorizedKeyParameter(publicKeyLine: string): string {
  const line = normaliseHostKey(publicKeyLine);
  return `${AUTHORIZED_KEY_PARAMETER}=${Buffer.from(line, 'utf8').toString('base64url')}`;
}

/** The key line a `macvm.ssh_authorized_key=` value carries (for tests and checks). */
export function decodeAuthorizedKeyParameter(value: string): string {
  return Buffer.from(value, 'base64url').toString('utf8');
}

/**
 * The public key line of the client key at `privateKeyPath`: read from the key itself when it
 * is in OpenSSH's format (the public half is stored unencrypted in its header, so this works
 * for a key with a passphrase too), else from the `.pub` file beside it.
 */
export async function publicKeyOfClientKey(privateKeyPath: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(privateKeyPath, 'utf8');
  } catch (error) {
    throw new MacvmError('MACVM_IMAGE_CORRUPT', `Cannot read the client key ${privateKeyPath}: ${messageOf(error)}.`, {
      hint: 'A qemu image hands its client key to the guest at boot; rebuild or pull the image again.',
      cause: error,
    });
  }
  const fromKey = openSshPublicKey(text);
  if (fromKey) return fromKey;
  try {
    return normaliseHostKey(await readFile(`${privateKeyPath}.pub`, 'utf8'));
  } catch (error) {
    throw new MacvmError('MACVM_CONFIG_INVALID', `The public half of the client key ${privateKeyPath} is not readable: the key is not in OpenSSH's format and ${privateKeyPath}.pub is missing or not a public key.`, {
      hint: `The guest is given the login key's public half at boot. Put it beside the key: \`ssh-keygen -y -f ${privateKeyPath} > ${privateKeyPath}.pub\`.`,
      cause: error,
    });
  }
}

const OPENSSH_MAGIC = Buffer.from('openssh-key-v1\0', 'latin1');

/**
 * From OpenSSH's PROTOCOL.key: after the magic come the cipher name, KDF name and KDF options
 * (strings), the number of keys (uint32), then each public key blob (string), all before the
 * (possibly encrypted) private section. Returns "type base64" or undefined for anything else.
 */
export function openSshPublicKey(privateKeyText: string): string | undefined {
  const match = /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END OPENSSH PRIVATE KEY-----/.exec(privateKeyText);
  if (!match) return undefined;
  const bytes = Buffer.from(match[1]!.replace(/\s+/g, ''), 'base64');
  if (!bytes.subarray(0, OPENSSH_MAGIC.length).equals(OPENSSH_MAGIC)) return undefined;
  let at = OPENSSH_MAGIC.length;
  const string = (): Buffer | undefined => {
    if (at + 4 > bytes.length) return undefined;
    const length = bytes.readUInt32BE(at);
    if (at + 4 + length > bytes.length) return undefined;
    const value = bytes.subarray(at + 4, at + 4 + length);
    at += 4 + length;
    return value;
  };
  for (let field = 0; field < 3; field++) if (!string()) return undefined; // cipher, kdf, kdf options
  if (at + 4 > bytes.length || bytes.readUInt32BE(at) !== 1) return undefined;
  at += 4;
  const blob = string();
  if (!blob || blob.length < 4) return undefined;
  const typeLength = blob.readUInt32BE(0);
  if (typeLength === 0 || 4 + typeLength > blob.length) return undefined;
  const type = blob.subarray(4, 4 + typeLength).toString('latin1');
  try {
    return normaliseHostKey(`${type} ${blob.toString('base64')}`);
  } catch {
    return undefined;
  }
}
