import { createWriteStream } from 'node:fs';
import { rename, stat } from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { MacvmError } from '../../errors.js';

export interface DownloadProgress {
  receivedBytes: number;
  totalBytes?: number;
}

/**
 * Downloads `url` to `target`, resumably: bytes land in `<target>.part`, and a later call
 * asks the server for the rest with a Range request (IPSWs are ~15 GB; a dropped connection
 * must not start over). A server that ignores Range (200) restarts the file from zero.
 */
export async function downloadResumable(
  url: string,
  target: string,
  options: { onProgress?: (p: DownloadProgress) => void; signal?: AbortSignal } = {},
): Promise<void> {
  const part = `${target}.part`;
  const have = await stat(part).then(
    (s) => s.size,
    () => 0,
  );
  let response: Response;
  try {
    response = await fetch(url, { headers: have > 0 ? { Range: `bytes=${have}-` } : {}, signal: options.signal });
  } catch (error) {
    throw new MacvmError('MACVM_IPSW_INVALID', `Could not download ${url}: ${(error as Error).message}`, {
      hint: 'Check the network; rerun the same command to resume where it stopped.',
      cause: error,
    });
  }
  if (response.status === 416 && have > 0) {
    // Range not satisfiable: the part file is already complete.
    await rename(part, target);
    return;
  }
  if (!response.ok || !response.body) {
    throw new MacvmError('MACVM_IPSW_INVALID', `Downloading ${url} failed: HTTP ${response.status} ${response.statusText}.`, {
      hint: 'Rerun to retry; pass --ipsw <path> to use an IPSW you downloaded yourself.',
    });
  }
  const resuming = response.status === 206 && have > 0;
  const length = Number(response.headers.get('content-length') ?? Number.NaN);
  const total = Number.isFinite(length) ? (resuming ? have + length : length) : undefined;
  let received = resuming ? have : 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      received += chunk.length;
      options.onProgress?.({ receivedBytes: received, totalBytes: total });
      callback(null, chunk);
    },
  });
  await pipeline(Readable.fromWeb(response.body as import('node:stream/web').ReadableStream), counter, createWriteStream(part, { flags: resuming ? 'a' : 'w', mode: 0o644 }));
  if (total !== undefined && received !== total) {
    throw new MacvmError('MACVM_IPSW_INVALID', `Download of ${url} ended at ${received} of ${total} bytes.`, { hint: 'Rerun the same command to resume.' });
  }
  await rename(part, target);
}
