import { availableParallelism, totalmem } from 'node:os';

/** The facts about the host that defaults depend on (injectable for tests). */
export interface HostFacts {
  platform: NodeJS.Platform;
  arch: string;
  /** CPU threads available to this process. */
  cpus: number;
  totalMemoryBytes: number;
}

export function currentHost(): HostFacts {
  return { platform: process.platform, arch: process.arch, cpus: availableParallelism(), totalMemoryBytes: totalmem() };
}

/** Apple Silicon: where Virtualization.framework runs macOS guests. */
export function isAppleSilicon(host: Pick<HostFacts, 'platform' | 'arch'>): boolean {
  return host.platform === 'darwin' && host.arch === 'arm64';
}
