import { randomBytes } from 'node:crypto';
import { MacvmError } from '../../errors.js';
import { createTaggedRuntimeDir, newVmRecord } from '../runtime-dir.js';
import type { Clone, CloneOptions, Image, Provider } from '../types.js';
import { cleanupCommand } from './cleanup.js';
import { orchardError } from './orchard-error.js';
import { OrchardClone } from './clone.js';
import { orchardCredentials } from './image-login.js';
import { lazyClient } from './lazy-client.js';
import { resolveController, type OrchardProviderSettings } from './settings.js';

export type { OrchardImageSettings, OrchardProviderSettings, OrchardSettings } from './settings.js';
export type { OrchardRunningVM } from './running-vm.js';

/**
 * The orchard provider: a fleet of Macs run by a Cirrus Labs Orchard controller
 * (github.com/cirruslabs/orchard). Nothing runs on this host but a TCP listener:
 *
 *   prepare  resolve the controller (settings.ts) and GET /v1/controller/info: reachable, and
 *            the service account is valid — before anything is created
 *   clone    a VM name tagged with the session ("macvm-<session>-<random>") and its runtime dir,
 *            whose cleanup command DELETEs the VM (cleanup.ts; no token on disk). Nothing is
 *            created on the controller yet (vm-spec.ts says why)
 *   boot     POST /v1/vms, then GET /v1/vms/{name} until "running" (clone.ts, boot-status.ts)
 *   address  a port-forward listener on 127.0.0.1:<random> (running-vm.ts, port-forward.ts)
 *   stop     DELETE /v1/vms/{name} (404 = already gone): Orchard has no "stopped but kept" state
 *   attach   a VM another process started is the same clone and running VM, rebuilt from its
 *            runtime dir (attach.ts); a detached VM's vm.json records no ssh port, since the
 *            listener that served it died with the process that started it
 *
 * SSH: the login and pinned host key come from the image's settings (image-login.ts).
 */
export interface OrchardProviderOptions extends OrchardProviderSettings {
  /** Recorded in vm.json (`macvm vm start`): the reaper leaves the VM alone. */
  detached?: boolean;
  /** Where ORCHARD_* variables are read (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Base for a relative certificate path (default the current directory). */
  cwd?: string;
  /** How often boot() asks the controller for the VM's status; default 1000 ms. */
  pollIntervalMs?: number;
  /** How often a running VM is checked for failure or deletion; default 5000 ms; 0 turns it off. */
  watchIntervalMs?: number;
  /** The port-forward's `wait` (seconds the controller waits for the guest port); default 10, as the API's. */
  portForwardWaitSeconds?: number;
}

export interface OrchardImage extends Image {
  provider: 'orchard';
  /** The image the workers run (VMSpec `image`). */
  source: string;
}

const IMAGE_REF = /^[A-Za-z0-9][A-Za-z0-9._\-/:@]*$/;

export function createOrchardProvider(options: OrchardProviderOptions = {}): Provider {
  const { detached, env, cwd, pollIntervalMs, watchIntervalMs, portForwardWaitSeconds, ...settings } = options;
  const client = lazyClient(() => resolveController(settings, { env, cwd }));
  return {
    name: 'orchard',
    async prepare(imageRef: string): Promise<OrchardImage> {
      if (!IMAGE_REF.test(imageRef)) throw new MacvmError('MACVM_BAD_ARGUMENT', `"${imageRef}" is not an image name or an OCI reference.`);
      const perImage = settings.images?.[imageRef];
      const source = perImage?.source ?? imageRef;
      if (!IMAGE_REF.test(source)) throw new MacvmError('MACVM_CONFIG_INVALID', `images.${imageRef}.source ("${source}") is not an OCI reference or a Tart VM name.`, { details: { key: `images.${imageRef}.source` } });
      const ssh = orchardCredentials(imageRef, perImage ?? settings.images?.['*'] ?? {}, settings.insecureAcceptAnyHostKey ?? false);
      const api = await client();
      let info;
      try {
        info = await api.controllerInfo();
      } catch (error) {
        throw orchardError(error, { client: api, action: `use image "${imageRef}"`, fallback: 'MACVM_PROVIDER_UNAVAILABLE' });
      }
      return {
        name: imageRef,
        provider: 'orchard',
        location: `${api.url} ${source}`,
        os: 'macos',
        arch: 'aarch64',
        ssh,
        facts: { controller: api.url, orchardImage: source, ...(info.version ? { controllerVersion: info.version } : {}) },
        source,
      };
    },

    async clone(image: Image, cloneOptions: CloneOptions): Promise<Clone> {
      const orchardImage = image as OrchardImage;
      if (orchardImage.provider !== 'orchard' || !orchardImage.source) throw new MacvmError('MACVM_BAD_ARGUMENT', `Image "${image.name}" was not prepared by the orchard provider.`);
      const api = await client();
      const name = vmName(cloneOptions.session.id);
      // Tagged before the controller knows the VM: from here on the reaper can DELETE it.
      const record = newVmRecord({
        id: name,
        session: cloneOptions.session.id,
        provider: 'orchard',
        image: image.name,
        cleanup: [cleanupCommand({ controller: api.url, vm: name, configFile: settings.configFile, context: api.target.context, cwd: cwd ?? process.cwd() })],
        detached,
      });
      const runtimeDir = await createTaggedRuntimeDir(record);
      return new OrchardClone({
        id: name,
        vm: name,
        image,
        runtimeDir,
        api: client,
        reach: { watchIntervalMs, portForwardWaitSeconds },
        creation: { record, source: orchardImage.source, settings, diskGiB: cloneOptions.diskGiB, pollIntervalMs },
      });
    },
  };
}

/** Builds the provider from macvm.config.ts `settings` (checked in prepare()). */
export function createOrchardProviderFromConfig(settings: Record<string, unknown> | undefined, options: { detached?: boolean } = {}): Provider {
  return createOrchardProvider({ ...(settings as OrchardProviderSettings | undefined), detached: options.detached });
}

/**
 * "macvm-<session>-<random>": the session makes the VM findable on the controller
 * (`orchard list vms`), the name keeps to Orchard's future rule: [a-z0-9-], at most 63
 * characters, alphanumeric at both ends (internal/simplename/simplename.go ValidateNext).
 */
export function vmName(sessionId: string): string {
  const session = sessionId
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 40)
    .replace(/-$/, '');
  return `macvm-${session ? `${session}-` : ''}${randomBytes(4).toString('hex')}`;
}
