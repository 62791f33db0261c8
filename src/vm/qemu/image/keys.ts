import { chmod, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runTool } from './run-tool.js';

/**
 * The image's two key pairs, made fresh for every build so no two images share a key:
 * the client key the host logs in with, and the guest's host key, whose public half is
 * pinned in image.json. Both are ed25519 from ssh-keygen; dropbear gets the host key
 * converted into its own format.
 */
export interface ImageKeys {
  /** Client private key (OpenSSH format, 0600). */
  clientKeyPath: string;
  /** "ssh-ed25519 AAAA…" for the guest's authorized_keys. */
  clientPublicKey: string;
  /** The host key in dropbear's format, for the guest (0600). */
  dropbearHostKeyPath: string;
  /** "ssh-ed25519 AAAA…" — the line to pin. */
  hostPublicKey: string;
}

export async function generateImageKeys(options: { clientKeyPath: string; workDir: string }): Promise<ImageKeys> {
  const { clientKeyPath, workDir } = options;
  const clientPublicKey = await generateClientKey(clientKeyPath);
  const hostKey = join(workDir, 'ssh_host_ed25519_key');
  await runTool('generate the guest host key', 'ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'macvm-linux-test-host', '-f', hostKey]);
  const dropbearHostKeyPath = join(workDir, 'dropbear_ed25519_host_key');
  await runTool('convert the host key for dropbear', 'dropbearconvert', ['openssh', 'dropbear', hostKey, dropbearHostKeyPath]);
  await chmod(dropbearHostKeyPath, 0o600);
  return { clientKeyPath, clientPublicKey, dropbearHostKeyPath, hostPublicKey: keyLine(await readFile(`${hostKey}.pub`, 'utf8')) };
}

/**
 * A fresh ed25519 client key pair at `privateKeyPath` (0600, no passphrase) and its `.pub`;
 * returns the public key line. Made for every build, and for every pulled image at install.
 */
export async function generateClientKey(privateKeyPath: string, comment = 'macvm-linux-test-client'): Promise<string> {
  await runTool('generate the client key', 'ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', privateKeyPath]);
  await chmod(privateKeyPath, 0o600);
  return keyLine(await readFile(`${privateKeyPath}.pub`, 'utf8'));
}

/** "type base64" without the comment: the comment is not part of the key. */
export function keyLine(publicKeyFile: string): string {
  const [type, data] = publicKeyFile.trim().split(/\s+/);
  if (!type || !data) throw new Error(`not an OpenSSH public key: ${publicKeyFile.slice(0, 40)}`);
  return `${type} ${data}`;
}
