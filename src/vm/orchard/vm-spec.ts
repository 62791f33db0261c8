import type { BootOptions } from '../types.js';
import type { OrchardVm } from './client.js';
import type { OrchardSettings } from './settings.js';

/** The settings that shape every VM this process creates (Orchard's VMSpec, api/openapi.yaml). */
export type OrchardVmSettings = Pick<OrchardSettings, 'headless' | 'imagePullPolicy' | 'labels' | 'resources'>;

/**
 * The body of POST /v1/vms. It is sent by boot(), not clone(): Orchard's POST both clones and
 * starts, and needs the cpu and memory only boot() knows (changing them later would restart the
 * VM: api_vms.go updateVMSpec bumps the generation). Optional fields are left out, not sent
 * empty, so the controller's defaults apply.
 */
export function vmSpec(name: string, source: string, boot: Pick<BootOptions, 'cpus' | 'memoryMiB'>, settings: OrchardVmSettings, diskGiB: number | undefined): OrchardVm {
  return {
    name,
    image: source,
    cpu: boot.cpus,
    memory: boot.memoryMiB, // megabytes (VMSpec `memory`)
    headless: settings.headless ?? true,
    ...(diskGiB !== undefined ? { diskSize: diskGiB } : {}),
    ...(settings.imagePullPolicy ? { imagePullPolicy: settings.imagePullPolicy } : {}),
    ...(settings.labels ? { labels: settings.labels } : {}),
    ...(settings.resources ? { resources: settings.resources } : {}),
  };
}
