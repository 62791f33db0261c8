/**
 * One blob, streamed from where we are to its end: continues with a Range request after a
 * dropped connection (as Tart does, five attempts), starts over when the server ignores Range,
 * and never takes more bytes than the descriptor says.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { MacvmError, isMacvmError, messageOf } from '../errors.js';
import type { OciDescriptor, RegistryClient } from './registry-client.js';

export interface StreamBlobOptions {
  /** Bytes of the blob the caller already has (from a .partial file). */
  start: number;
  /** The server sent the blob from its first byte: drop what you had. */
  onRestart: () => Promise<void>;
  /** The next bytes; the chunk is the callee's to keep or move (transfer) elsewhere. */
  onChunk: (chunk: Buffer) => Promise<void>;
  /** How many times a dropped transfer is resumed before giving up. */
  retries: number;
  signal?: AbortSignal;
  /** "disk layer 3 (sha256:…) of host/repo:tag", for messages. */
  describe: string;
}

const NOT_RETRIED = new Set(['MACVM_REGISTRY_AUTH_FAILED', 'MACVM_IMAGE_NOT_FOUND', 'MACVM_IMAGE_CORRUPT', 'MACVM_BAD_ARGUMENT', 'MACVM_INTERRUPTED', 'MACVM_DISK_SPACE']);

export async function streamBlob(client: RegistryClient, layer: OciDescriptor, options: StreamBlobOptions): Promise<void> {
  let have = options.start;
  let failures = 0;
  while (have < layer.size) {
    throwIfAborted(options.signal);
    try {
      const response = await client.pullBlob(layer.digest, { start: have, signal: options.signal });
      if (response.start !== have) {
        if (response.start !== 0) throw new MacvmError('MACVM_REGISTRY_ERROR', `The registry sent ${options.describe} from byte ${response.start} when asked for byte ${have}.`);
        await options.onRestart();
        have = 0;
      }
      for await (const chunk of response.body) {
        throwIfAborted(options.signal);
        if (have + chunk.length > layer.size) {
          throw new MacvmError('MACVM_IMAGE_CORRUPT', `${options.describe} is longer than the ${layer.size} bytes its manifest says.`, {
            hint: 'The registry serves other bytes than the manifest describes; re-push the image.',
            details: { digest: layer.digest },
          });
        }
        // Read before onChunk: it may move the chunk to a worker, which leaves it empty here.
        const length = chunk.length;
        await options.onChunk(chunk);
        have += length;
      }
      if (have < layer.size) throw new Error(`the transfer ended at byte ${have} of ${layer.size}`);
    } catch (error) {
      // A refusal (a 4xx other than 429) will not change by asking again; a cut connection or a 5xx may.
      if (isMacvmError(error) && (NOT_RETRIED.has(error.code) || error.details.transient === false)) throw error;
      if (options.signal?.aborted) throw interrupted(options.signal);
      failures += 1;
      if (failures > options.retries) {
        throw new MacvmError('MACVM_REGISTRY_ERROR', `Downloading ${options.describe} stopped at byte ${have} of ${layer.size}: ${messageOf(error)}.`, {
          hint: 'Run the pull again: it resumes from where this one stopped.',
          cause: error,
          details: { digest: layer.digest, have, size: layer.size },
        });
      }
      await sleep(Math.min(200 * 2 ** (failures - 1), 3000));
    }
  }
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw interrupted(signal);
}

function interrupted(signal: AbortSignal): MacvmError {
  return new MacvmError('MACVM_INTERRUPTED', 'The pull was interrupted; what it downloaded is kept, and the next pull resumes from there.', { cause: signal.reason });
}
