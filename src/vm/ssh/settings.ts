import { access, constants } from 'node:fs/promises';
import { MacvmError } from '../../errors.js';
import { checkValue, isPlainObject, type Rule } from '../../util/validate.js';
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
 * The config's `ssh` section: the one rule both macvm.config.ts validation and
 * validateSshSettings() (settings handed over in code) apply. hostKey is required too, but
 * checked by normaliseHostKey(), whose message says how to get and verify one.
 */
export const SSH_SETTINGS_RULE = {
  kind: 'object',
  required: ['host', 'user', 'hostKey'],
  keys: {
    host: { kind: 'string', nonEmpty: true },
    port: { kind: 'integer', min: 1, max: 65535 },
    user: { kind: 'string', nonEmpty: true },
    privateKeyPath: { kind: 'string', nonEmpty: true },
    password: { kind: 'string' },
    hostKey: { kind: 'string', nonEmpty: true },
    os: { kind: 'enum', values: ['macos', 'linux'] },
    arch: { kind: 'enum', values: ['aarch64', 'x86_64'] },
  },
} satisfies Rule;

// hostKey is left to normaliseHostKey(), whose message says how to get and verify one.
const SHAPE_RULE: Rule = { kind: 'object', required: ['host', 'user'], keys: { ...SSH_SETTINGS_RULE.keys, hostKey: { kind: 'any' } } };

/**
 * Checks settings that usually come from macvm.config.ts (already validated there) or from code
 * (startMacVM({ providerSettings }), not yet) and says which key is wrong and how to fix it. Runs
 * in Provider.prepare(), before any connection is tried.
 */
export async function validateSshSettings(raw: unknown): Promise<ValidSshSettings> {
  if (!isPlainObject(raw)) {
    throw invalid('settings', 'must be an object { host, user, hostKey, privateKeyPath | password, port?, os?, arch? }');
  }
  const [problem] = checkValue(raw, SHAPE_RULE, 'ssh');
  if (problem) {
    const key = problem.path.replace(/^ssh\.?/, '') || 'settings';
    throw new MacvmError('MACVM_CONFIG_INVALID', `ssh provider: ${problem.message}.`, { details: { key } });
  }
  const settings = raw as unknown as SshProviderSettings;
  const { host, user, privateKeyPath, password } = settings;
  const port = settings.port ?? 22;
  if (privateKeyPath === undefined && password === undefined) {
    throw invalid('privateKeyPath', 'is missing (and so is password): give one way to log in', 'Prefer a key: `ssh-keygen -t ed25519 -f ~/.ssh/macvm-lab` and add the .pub to ~/.ssh/authorized_keys on the machine.');
  }
  if (privateKeyPath !== undefined) {
    try {
      await access(privateKeyPath, constants.R_OK);
    } catch {
      throw invalid('privateKeyPath', `points at ${privateKeyPath}, which does not exist or is not readable`);
    }
  }
  const hostKey = normaliseHostKey(settings.hostKey, host, port);
  const os = settings.os ?? 'macos';
  const arch = settings.arch ?? (os === 'macos' ? 'aarch64' : 'x86_64');
  return { host, port, user, privateKeyPath, password, hostKey, os, arch };
}

function invalid(key: string, problem: string, hint?: string): MacvmError {
  return new MacvmError('MACVM_CONFIG_INVALID', `ssh provider: "${key}" ${problem}.`, { hint, details: { key } });
}
