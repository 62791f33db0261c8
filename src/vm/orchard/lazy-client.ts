import { OrchardClient } from './client.js';
import type { ControllerTarget } from './settings.js';

/**
 * The controller's client, resolved on first use and then kept. Resolving reads settings,
 * contexts and certificates — work a `macvm vm rm` of a VM never created should not need. A
 * failed resolution is forgotten, so the next use tries again (a config fixed, a file back).
 */
export function lazyClient(resolve: () => Promise<ControllerTarget>): () => Promise<OrchardClient> {
  let client: Promise<OrchardClient> | undefined;
  return () => {
    client ??= resolve().then((target) => new OrchardClient(target));
    client.catch(() => (client = undefined));
    return client;
  };
}
