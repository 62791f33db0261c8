import { MacvmError } from '../../errors.js';
import { configuredHostKey, pinnedCredentials } from '../credentials.js';
import type { SshCredentials } from '../types.js';
import type { OrchardImageSettings } from './settings.js';

/**
 * How to log in to an image's guests: the workers run Tart images, so the login is Tart's
 * (admin/admin unless configured; Orchard's VMSpec defaults too, api/openapi.yaml), built by the
 * same code as tart's and vz's. The guest's host key is pinned per image
 * (`images: { <name>: { ssh: { hostKey } } }`), never learned — a VM on someone else's worker is
 * exactly where a swapped key must be noticed. Only the advice differs: how to get the key of a
 * VM that lives behind a controller.
 */
export function orchardCredentials(imageRef: string, image: OrchardImageSettings, insecure: boolean): SshCredentials {
  const key = `images.${imageRef}.ssh.hostKey`;
  const hostKey = image.hostKey ? configuredHostKey(image.hostKey, key) : undefined;
  if (!hostKey && !insecure) {
    throw new MacvmError('MACVM_CONFIG_INVALID', `The orchard image "${imageRef}" has no pinned SSH host key.`, {
      hint:
        `Run a VM of it once (\`orchard create vm … && orchard port-forward vm <name> 2222:22\`), get the key with \`ssh-keyscan -t ed25519 -p 2222 127.0.0.1\`, ` +
        `compare its fingerprint out of band, and set ${key} in macvm.config.ts — or, for throwaway machines only, set orchard.insecureAcceptAnyHostKey: true.`,
      details: { key },
    });
  }
  return pinnedCredentials('orchard', imageRef, { images: { [imageRef]: { ...image, hostKey } }, insecureAcceptAnyHostKey: insecure });
}
