import { createHash } from 'node:crypto';
import { MacvmError } from '../errors.js';

/**
 * Host-key pinning. A guest's host key is generated when its image is built and
 * recorded in the image's metadata as an OpenSSH public key line; every connection
 * compares the key the server presents (ssh2 hands us the raw key blob) with that
 * pinned blob, byte for byte. Anything else is a different machine, or a
 * man in the middle, and is refused.
 */
export interface PublicKey {
  /** Algorithm name, e.g. `ssh-ed25519`. */
  type: string;
  /** The wire-format key blob (what the base64 field of the line decodes to). */
  blob: Buffer;
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** Parses "ssh-ed25519 AAAA... comment" (a leading known_hosts host field is tolerated). */
export function parseOpenSshPublicKey(line: string): PublicKey {
  const fields = line.trim().split(/\s+/);
  const at = fields.findIndex((field, index) => looksLikeKeyType(field) && BASE64.test(fields[index + 1] ?? ''));
  if (at < 0) {
    throw new MacvmError('MACVM_BAD_ARGUMENT', `The pinned host key is not an OpenSSH public key line: "${clip(line)}".`, {
      hint: 'Pin the server\'s key as one line of its /etc/ssh/ssh_host_*_key.pub, e.g. "ssh-ed25519 AAAAC3Nza...".',
    });
  }
  const type = fields[at]!;
  const blob = Buffer.from(fields[at + 1]!, 'base64');
  const embedded = keyTypeOfBlob(blob);
  if (embedded !== type) {
    throw new MacvmError('MACVM_BAD_ARGUMENT', `The pinned host key says "${type}" but its data is a "${embedded ?? 'malformed'}" key.`, {
      hint: 'Copy the whole line again from the server\'s host key .pub file.',
    });
  }
  return { type, blob };
}

/** The algorithm name stored at the start of every SSH key blob (a length-prefixed string). */
export function keyTypeOfBlob(blob: Buffer): string | undefined {
  if (blob.length < 4) return undefined;
  const length = blob.readUInt32BE(0);
  if (length === 0 || length > 64 || 4 + length > blob.length) return undefined;
  return blob.subarray(4, 4 + length).toString('latin1');
}

/** The fingerprint `ssh-keygen -lf` prints: SHA256 of the blob, base64 without padding. */
export function fingerprintSha256(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** The presented key as a line a user can pin. */
export function formatOpenSshPublicKey(blob: Buffer): string {
  return `${keyTypeOfBlob(blob) ?? 'unknown'} ${blob.toString('base64')}`;
}

export interface HostKeyCheck {
  /** For ssh2's `hostVerifier`: true accepts the presented blob. */
  verify(presented: Buffer): boolean;
  /** Set after `verify` refused a key: the error to throw instead of ssh2's generic one. */
  readonly refusal: MacvmError | undefined;
}

/**
 * Builds the verifier for one connection attempt. With no pinned key, every key is
 * refused unless the caller explicitly opted out of pinning: silently trusting the
 * first key would make pinning optional by accident.
 */
export function createHostKeyCheck(target: string, pinnedLine: string | undefined, insecureAcceptAnyHostKey = false): HostKeyCheck {
  const pinned = pinnedLine === undefined ? undefined : parseOpenSshPublicKey(pinnedLine);
  let refusal: MacvmError | undefined;
  return {
    get refusal() {
      return refusal;
    },
    verify(presented: Buffer): boolean {
      if (pinned ? pinned.blob.equals(presented) : insecureAcceptAnyHostKey) return true;
      const presentedFingerprint = fingerprintSha256(presented);
      if (pinned) {
        const expected = fingerprintSha256(pinned.blob);
        refusal = new MacvmError(
          'MACVM_HOST_KEY_MISMATCH',
          `${target} presented host key ${presentedFingerprint} (${keyTypeOfBlob(presented) ?? 'unknown type'}), but ${expected} (${pinned.type}) is pinned; refusing to connect.`,
          {
            hint: 'If the guest\'s image was rebuilt, its host key changed: re-read the image metadata (or re-pin the key). Otherwise something else answers on that address.',
            details: { target, expected, presented: presentedFingerprint },
          },
        );
      } else {
        refusal = new MacvmError('MACVM_HOST_KEY_MISMATCH', `${target} presented host key ${presentedFingerprint}, but no host key is pinned; refusing to connect.`, {
          hint: `If the guest really changed, check "${formatOpenSshPublicKey(presented)}" on the guest itself, then pin it in macvm.config.ts (images.<name>.ssh.hostKey; ssh.hostKey for the ssh provider).`,
          details: { target, expected: null, presented: presentedFingerprint },
        });
      }
      return false;
    },
  };
}

function looksLikeKeyType(field: string): boolean {
  return /^(ssh-[a-z0-9-]+|ecdsa-sha2-[a-z0-9-]+|sk-[a-z0-9@.-]+)(@openssh\.com)?$/.test(field) || /^[a-z0-9-]+-cert-v01@openssh\.com$/.test(field);
}

function clip(text: string): string {
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
