import { chmod, lstat, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { MacvmError, messageOf } from '../../errors.js';
import { writeFileAtomic } from '../../util/atomic-write.js';
import { normaliseHostKey } from '../credentials.js';
import { AUTHORIZED_KEY_FROM_CMDLINE, AUTHORIZED_KEY_PARAMETER } from './authorized-key.js';
import { generateClientKey } from './image/keys.js';
import { IMAGE_FILE_FIELDS, isPortableImageFileName, MANIFEST_FILE, type QemuImageManifest } from './manifest.js';
import { diskFacts, virtualSizeBytes } from './qemu-img.js';

/**
 * Turns a pulled qemu image — the staging dir the pull engine filled, before it is installed
 * (its `prepareInstall` hook) — into a local image: image.json checked as untrusted input,
 * every file it names present and nothing else, the disk a self-contained qcow2, and a fresh
 * client key pair made here, on this host, which the guest is handed at every boot. The
 * pusher's client key never came along (registry-push-plan.ts), and the guest lets in only
 * the key on its command line, so the pusher cannot log in to this host's clones.
 */

/** The fresh client key's file in the installed image (0600; its .pub beside it). */
export const PULLED_CLIENT_KEY_FILE = 'id_ed25519';

const MAX_MANIFEST_BYTES = 1024 * 1024;
const MACHINE = /^[a-z][a-z0-9.-]{0,63}$/;
const USER = /^[a-z_][a-z0-9_-]{0,31}$/;

export async function installPulledQemuImage(stagingDir: string): Promise<QemuImageManifest> {
  const path = join(stagingDir, MANIFEST_FILE);
  const text = await readFile(path, 'utf8').catch((error: unknown) => {
    throw corrupt(`it has no readable ${MANIFEST_FILE} (${messageOf(error)})`);
  });
  if (Buffer.byteLength(text) > MAX_MANIFEST_BYTES) throw corrupt(`its ${MANIFEST_FILE} is over ${MAX_MANIFEST_BYTES} bytes`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw corrupt(`its ${MANIFEST_FILE} is not JSON (${messageOf(error)})`);
  }
  const shared = checkSharedManifest(parsed);
  // A pull resumed after this ran once finds the key of that attempt: it is made again, here.
  await rm(join(stagingDir, PULLED_CLIENT_KEY_FILE), { force: true });
  await rm(join(stagingDir, `${PULLED_CLIENT_KEY_FILE}.pub`), { force: true });
  await checkFiles(stagingDir, shared);

  await generateClientKey(join(stagingDir, PULLED_CLIENT_KEY_FILE), 'macvm-pulled-image-client');
  const manifest: QemuImageManifest = { ...shared, ssh: { ...shared.ssh, privateKey: PULLED_CLIENT_KEY_FILE } };
  // A read-only base and kernel, as a built image has them; the dir private, for the key.
  for (const field of IMAGE_FILE_FIELDS) if (manifest[field]) await chmod(join(stagingDir, manifest[field]!), 0o444);
  await writeFileAtomic(path, `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o644 });
  await chmod(stagingDir, 0o700);
  return manifest;
}

type SharedManifest = Omit<QemuImageManifest, 'ssh'> & { ssh: Omit<QemuImageManifest['ssh'], 'privateKey'> };

/**
 * image.json as it arrives: untrusted. Its values reach qemu's argv and the guest's kernel
 * command line, so each is checked for its shape, not only its presence.
 */
export function checkSharedManifest(value: unknown): SharedManifest {
  if (!isRecord(value)) throw corrupt(`its ${MANIFEST_FILE} is not an object`);
  if (value.schema !== 1) throw unsupported(`its ${MANIFEST_FILE} has schema ${JSON.stringify(value.schema)}; this macvm reads schema 1`);
  if (typeof value.name !== 'string' || value.name.length > 200) throw corrupt('its name is missing or too long');
  if (value.os !== 'linux' && value.os !== 'macos') throw corrupt(`its os ${JSON.stringify(value.os)} is neither linux nor macos`);
  if (value.arch !== 'x86_64' && value.arch !== 'aarch64') throw corrupt(`its arch ${JSON.stringify(value.arch)} is neither x86_64 nor aarch64`);
  if (typeof value.createdAt !== 'string') throw corrupt('it has no createdAt');
  if (value.kernel === undefined) {
    throw unsupported('it boots from its disk, not a kernel macvm hands it, so its clones could not be given this host\'s login key');
  }
  for (const field of IMAGE_FILE_FIELDS) {
    const name = value[field];
    if (name === undefined && field !== 'disk') continue;
    if (!isPortableImageFileName(name) || name === PULLED_CLIENT_KEY_FILE || name === `${PULLED_CLIENT_KEY_FILE}.pub`) {
      throw corrupt(`its ${field} is ${JSON.stringify(name)}, not a plain file name of the image (letters, digits, . _ -)`);
    }
  }
  for (const field of ['machine', 'displayMachine'] as const) {
    if (typeof value[field] !== 'string' || !MACHINE.test(value[field])) throw corrupt(`its ${field} ${JSON.stringify(value[field])} is not a qemu machine type`);
  }
  if (value.append !== undefined) {
    if (typeof value.append !== 'string' || value.append.length > 1024 || /[\u0000-\u001f\u007f]/.test(value.append)) throw corrupt('its kernel command line (append) is not one printable line');
    // The guest takes the last occurrence and macvm's own comes last; one in the image is a key planted by the pusher.
    if (value.append.includes(AUTHORIZED_KEY_PARAMETER)) throw corrupt(`its kernel command line carries ${AUTHORIZED_KEY_PARAMETER}, an authorized key of the pusher's choosing`);
  }
  if (value.readyMarker !== undefined && (typeof value.readyMarker !== 'string' || !/^[\x20-\x7e]{1,200}$/.test(value.readyMarker))) throw corrupt('its readyMarker is not one printable line');
  if (value.facts !== undefined && (!isRecord(value.facts) || Object.values(value.facts).some((fact) => typeof fact !== 'string'))) throw corrupt('its facts are not a map of strings');
  if (value.inputs !== undefined && (!Array.isArray(value.inputs) || value.inputs.some((input) => !isRecord(input) || Object.values(input).some((v) => typeof v !== 'string')))) {
    throw corrupt('its inputs are not a list of packages');
  }

  const ssh = value.ssh;
  if (!isRecord(ssh)) throw corrupt('it has no ssh section');
  if (ssh.authorizedKeyFrom !== AUTHORIZED_KEY_FROM_CMDLINE) {
    throw unsupported('its guest keeps a login key baked into its disk instead of taking one from the kernel command line, so the pusher\'s key would log in to every clone');
  }
  if (typeof ssh.user !== 'string' || !USER.test(ssh.user)) throw corrupt(`its ssh.user ${JSON.stringify(ssh.user)} is not a user name`);
  if (!Number.isInteger(ssh.port) || (ssh.port as number) < 1 || (ssh.port as number) > 65535) throw corrupt(`its ssh.port ${JSON.stringify(ssh.port)} is not a port`);
  let hostKey: string;
  try {
    hostKey = normaliseHostKey(ssh.hostKey);
  } catch {
    throw corrupt('its ssh.hostKey (the pinned guest host key) is not an OpenSSH public key');
  }
  const { privateKey: _ignored, ...rest } = ssh;
  return { ...(value as unknown as SharedManifest), ssh: { ...(rest as SharedManifest['ssh']), hostKey } };
}

/** Every file image.json names is a regular file here, and nothing else is (hidden files are the pull engine's). */
async function checkFiles(stagingDir: string, manifest: SharedManifest): Promise<void> {
  const named = IMAGE_FILE_FIELDS.map((field) => manifest[field]).filter((name): name is string => Boolean(name));
  if (new Set(named).size !== named.length) throw corrupt(`its ${MANIFEST_FILE} names one file for two purposes (${named.join(', ')})`);
  const present = (await readdir(stagingDir)).filter((entry) => !entry.startsWith('.') && entry !== MANIFEST_FILE);
  const stray = present.filter((entry) => !named.includes(entry));
  if (stray.length > 0) throw corrupt(`it brings files its ${MANIFEST_FILE} does not name: ${stray.join(', ')}`);
  for (const name of named) {
    const info = await lstat(join(stagingDir, name)).catch(() => undefined);
    if (!info?.isFile()) throw corrupt(`it lacks ${name}, which its ${MANIFEST_FILE} names`);
    if (info.size === 0) throw corrupt(`its ${name} is empty`);
  }
  const disk = join(stagingDir, manifest.disk);
  const facts = await diskFacts(disk);
  if (facts.format !== 'qcow2') throw corrupt(`its disk is ${facts.format ?? 'of no known format'}, not qcow2`);
  // A backing or data file would make qemu open a path of the pusher's choosing on this host.
  if (facts.backingFile || facts.dataFile) throw corrupt(`its disk refers to another file (${facts.backingFile ?? facts.dataFile}); a pulled disk must stand alone`);
  await virtualSizeBytes(disk); // qemu-img check: a damaged base fails here, not at the first clone
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function corrupt(why: string): MacvmError {
  return new MacvmError('MACVM_IMAGE_CORRUPT', `The pulled qemu image is not usable: ${why}.`, {
    hint: 'Nothing was installed. Push the image again with `macvm image push` from a current macvm, then pull it again.',
  });
}

function unsupported(why: string): MacvmError {
  return new MacvmError('MACVM_IMAGE_FORMAT_UNSUPPORTED', `The pulled qemu image cannot be used safely: ${why}.`, {
    hint: 'Nothing was installed. Ask its pusher to rebuild it with a current macvm (`macvm image build <name> --force`) and push it again.',
  });
}
