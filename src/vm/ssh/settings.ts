import { access, constants } from 'node:fs/promises';
import { MacvmError } from '../../errors.js';
import { normaliseHostKey } from '../credentials.js';
import type { GuestArch, GuestOS } from '../types.js';

/**
 * How to reach an existing machine (a lab Mac, a cloud Mac host, any SSH server).
 * Nothing is cloned or booted there: macvm only logs in.
 */
export interface SshProviderSettings {
  host: string;
  /** Default 22. */
  port?: number;
  user: string;
  /** A private key file (mode 0600). One of privateKeyPath / password is required. */
  privateKeyPath?: string;
  /** Never logged. Prefer a key. */
  password?: string;
  /**
   * The machine's host public key, pinned: "ssh-ed25519 AAAA...". A line from
   * `ssh-keyscan` ("host ssh-ed25519 AAAA...") is accepted too; the host part is dropped.
   */
  hostKey: string;
  /** Default 'macos' (the provider exists for lab Macs). */
  os?: GuestOS;
  /** Default 'aarch64' for macos (Apple Silicon), 'x86_64' for linux. */
  arch?: GuestArch;
}

export interface ValidSshSettings {
  host: string;
  port: number;
  user: string;
  privateKeyPath?: string;
  password?: string;
  /** Normalised to "<type> <base64>", no comment. */
  hostKey: string;
  os: GuestOS;
  arch: GuestArch;
}

/**
 * Checks settings that usually come from macvm.config.ts (so: untyped) and says which key
 * is wrong and how to fix it. Runs in Provider.prepare(), before any connection is tried.
 */
export async function validateSshSettings(raw: unknown): Promise<ValidSshSettings> {
  const settings = (raw ?? {}) as Record<string, unknown>;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw invalid('settings', 'must be an object { host, user, hostKey, privateKeyPath | password, port?, os?, arch? }');
  }
  const host = settings.host;
  if (typeof host !== 'string' || host.trim() === '') throw invalid('host', 'must be the machine\'s hostname or IP address');
  const port = settings.port ?? 22;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) throw invalid('port', `must be an integer 1–65535, got ${JSON.stringify(port)}`);
  const user = settings.user;
  if (typeof user !== 'string' || user.trim() === '') throw invalid('user', 'must be the login user on the machine');

  const privateKeyPath = settings.privateKeyPath;
  const password = settings.password;
  if (privateKeyPath !== undefined && (typeof privateKeyPath !== 'string' || privateKeyPath === '')) throw invalid('privateKeyPath', 'must be a path to a private key file');
  if (password !== undefined && typeof password !== 'string') throw invalid('password', 'must be a string');
  if (privateKeyPath === undefined && password === undefined) {
    throw invalid('privateKeyPath', 'is missing (and so is password): give one way to log in', 'Prefer a key: `ssh-keygen -t ed25519 -f ~/.ssh/macvm-lab` and add the .pub to ~/.ssh/authorized_keys on the machine.');
  }
  if (typeof privateKeyPath === 'string') {
    try {
      await access(privateKeyPath, constants.R_OK);
    } catch {
      throw invalid('privateKeyPath', `points at ${privateKeyPath}, which does not exist or is not readable`);
    }
  }

  const hostKey = normaliseHostKey(settings.hostKey, host, port);

  const os = settings.os ?? 'macos';
  if (os !== 'macos' && os !== 'linux') throw invalid('os', `must be "macos" or "linux", got ${JSON.stringify(os)}`);
  const arch = settings.arch ?? (os === 'macos' ? 'aarch64' : 'x86_64');
  if (arch !== 'aarch64' && arch !== 'x86_64') throw invalid('arch', `must be "aarch64" or "x86_64", got ${JSON.stringify(arch)}`);

  return { host, port, user, privateKeyPath: privateKeyPath as string | undefined, password: password as string | undefined, hostKey, os, arch };
}

function invalid(key: string, problem: string, hint?: string): MacvmError {
  return new MacvmError('MACVM_CONFIG_INVALID', `ssh provider: "${key}" ${problem}.`, { hint, details: { key } });
}
