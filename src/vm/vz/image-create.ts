import { open, rename, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { MacvmError } from '../../errors.js';
import { ensurePrivateDir, homePaths, macvmHome } from '../home.js';
import type { RestoreImageInfo } from './addon.js';
import { BUNDLE_FILES, writeBundleConfig, type TartVmConfig } from './bundle-config.js';
import { downloadResumable } from './download.js';
import { randomLocallyAdministeredMac } from './mac-address.js';
import type { VmhostCommandLine } from './running-vm.js';
import { VmhostClient } from './vmhost-client.js';
import { ensureVmhostBinary, vmhostCommandLine } from './vmhost-binary.js';
import { vmSpecFromBundle } from './vm-spec.js';

/**
 * `macvm image create`: a macOS VM bundle from an IPSW, in Tart's format, installed by
 * VZMacOSInstaller inside a vmhost. The bundle is built in a hidden sibling directory and
 * renamed into place only when the install succeeded, so a failed or interrupted create
 * never leaves a half-made image behind.
 */
export interface CreateImageOptions {
  name: string;
  /** "latest" (Apple's newest IPSW this host supports, downloaded) or a local .ipsw path. */
  ipsw: string;
  diskBytes: number;
  cpus?: number;
  memoryMiB?: number;
  force?: boolean;
  home?: string;
  /** How to start vmhost (tests); default the signed node. */
  vmhost?: VmhostCommandLine;
  onProgress?: (event: { step: string; detail?: string; fraction?: number }) => void;
}

export interface CreatedImage {
  name: string;
  bundle: string;
  ipsw: string;
  osVersion: string;
  buildVersion: string;
  cpuCount: number;
  memorySize: number;
  diskBytes: number;
}

export async function createMacosImage(options: CreateImageOptions): Promise<CreatedImage> {
  const home = options.home ?? macvmHome();
  const paths = homePaths(home);
  const bundle = paths.image(options.name);
  if (!options.force && (await exists(bundle))) {
    throw new MacvmError('MACVM_BAD_ARGUMENT', `Image "${options.name}" already exists.`, { hint: 'Pass --force to replace it, or pick another name.' });
  }
  const progress = options.onProgress ?? (() => {});
  const vmhost = options.vmhost ?? (await signedVmhost(home));
  await ensurePrivateDir(paths.images);
  const work = join(paths.images, `.${options.name}.partial-${process.pid}`);
  await rm(work, { recursive: true, force: true });
  await ensurePrivateDir(work);
  const client = await VmhostClient.spawn({ ...vmhost, logPath: join(work, 'vmhost.log') });
  try {
    const ipswPath = await obtainIpsw(client, options.ipsw, paths.downloads, progress);
    progress({ step: 'checking restore image', detail: basename(ipswPath) });
    const image = await client.request<RestoreImageInfo>({ cmd: 'restoreImage', path: ipswPath });
    if (!image.supported || !image.hardwareModel || image.minimumCpuCount === undefined || image.minimumMemoryBytes === undefined) {
      throw new MacvmError('MACVM_IPSW_INVALID', `macOS ${image.osVersion} (${image.buildVersion}) cannot be installed on this host.`, {
        hint: 'Use `--ipsw latest`, or update the host macOS to at least the IPSW\'s version.',
      });
    }
    const cpuCount = Math.max(options.cpus ?? image.minimumCpuCount, image.minimumCpuCount);
    const memorySize = Math.max(options.memoryMiB !== undefined ? options.memoryMiB * 2 ** 20 : image.minimumMemoryBytes, image.minimumMemoryBytes);

    progress({ step: 'creating bundle', detail: `${Math.round(options.diskBytes / 1e9)} GB disk` });
    await createSparseFile(join(work, BUNDLE_FILES.disk), options.diskBytes);
    await client.request({ cmd: 'createAuxiliaryStorage', path: join(work, BUNDLE_FILES.nvram), hardwareModel: image.hardwareModel });
    const ecid = await client.request<string>({ cmd: 'newMachineIdentifier' });
    const config: TartVmConfig = {
      version: 1,
      os: 'darwin',
      arch: 'arm64',
      cpuCountMin: image.minimumCpuCount,
      cpuCount,
      memorySizeMin: image.minimumMemoryBytes,
      memorySize,
      macAddress: randomLocallyAdministeredMac(),
      display: { width: 1920, height: 1200 },
      diskFormat: 'raw',
      ecid,
      hardwareModel: image.hardwareModel,
      raw: {},
    };
    await writeBundleConfig(work, config);

    progress({ step: `installing macOS ${image.osVersion}`, fraction: 0 });
    await client.request({ cmd: 'install', spec: vmSpecFromBundle(work, config), ipswPath }, { onProgress: (fraction) => progress({ step: `installing macOS ${image.osVersion}`, fraction }) });
    await client.close();
    await rm(join(work, 'vmhost.log'), { force: true });
    if (options.force) await rm(bundle, { recursive: true, force: true });
    await rename(work, bundle);
    return { name: options.name, bundle, ipsw: ipswPath, osVersion: image.osVersion, buildVersion: image.buildVersion, cpuCount, memorySize, diskBytes: options.diskBytes };
  } catch (error) {
    await client.close(5_000);
    await rm(work, { recursive: true, force: true });
    throw error;
  }
}

async function obtainIpsw(client: VmhostClient, ipsw: string, downloads: string, progress: NonNullable<CreateImageOptions['onProgress']>): Promise<string> {
  if (ipsw !== 'latest') {
    if (!(await exists(ipsw))) throw new MacvmError('MACVM_IPSW_INVALID', `No IPSW at ${ipsw}.`, { hint: 'Pass an existing .ipsw file, or `--ipsw latest`.' });
    return ipsw;
  }
  progress({ step: 'asking Apple for the latest supported macOS' });
  const latest = await client.request<RestoreImageInfo>({ cmd: 'restoreImage' });
  await ensurePrivateDir(downloads);
  const target = join(downloads, basename(new URL(latest.url).pathname) || `macos-${latest.buildVersion}.ipsw`);
  if (await exists(target)) return target; // downloaded before: IPSWs are immutable per build
  const step = `downloading macOS ${latest.osVersion} (${latest.buildVersion})`;
  await downloadResumable(latest.url, target, {
    onProgress: ({ receivedBytes, totalBytes }) =>
      progress({ step, detail: `${(receivedBytes / 1e9).toFixed(1)}${totalBytes ? ` / ${(totalBytes / 1e9).toFixed(1)}` : ''} GB`, fraction: totalBytes ? receivedBytes / totalBytes : undefined }),
  });
  return target;
}

/** A sparse disk image: truncate allocates no blocks, APFS and the guest fill it as needed. */
async function createSparseFile(path: string, bytes: number): Promise<void> {
  const handle = await open(path, 'wx', 0o644);
  try {
    await handle.truncate(bytes);
  } finally {
    await handle.close();
  }
}

async function signedVmhost(home: string): Promise<VmhostCommandLine> {
  if (process.platform !== 'darwin' || process.arch !== 'arm64') {
    throw new MacvmError('MACVM_PROVIDER_UNAVAILABLE', 'macOS images can only be created on an Apple Silicon Mac (Virtualization.framework).', {
      hint: 'On Linux, build the test guest with `macvm image build linux-test` instead.',
    });
  }
  const status = await ensureVmhostBinary({ home });
  if (!status.ok) {
    throw new MacvmError('MACVM_ENTITLEMENT_MISSING', `vmhost cannot run: ${status.problem}`, { hint: 'Run `macvm doctor --fix` first.' });
  }
  return vmhostCommandLine(status.path);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
