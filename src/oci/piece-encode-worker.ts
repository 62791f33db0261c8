/**
 * An encode worker thread for pushes: reads, hashes and compresses one disk piece per request
 * (encodePiece) and hands the compressed blob back without copying it (transferred).
 */
import { parentPort } from 'node:worker_threads';
import { messageOf } from '../errors.js';
import { type EncodeReply, type EncodeRequest, type EncodedPiece, encodePiece } from './piece-encode.js';

const port = parentPort!;
const zeroBlobs = new Map<number, EncodedPiece>();

port.on('message', (request: EncodeRequest) => {
  try {
    const piece = encodePiece(request.fd, request.offset, request.size, zeroBlobs);
    const owned = piece.compressed.byteOffset === 0 && piece.compressed.byteLength === piece.compressed.buffer.byteLength ? piece.compressed : new Uint8Array(piece.compressed);
    port.postMessage({ id: request.id, piece: { ...piece, compressed: owned } } satisfies EncodeReply, [owned.buffer as ArrayBuffer]);
  } catch (error) {
    port.postMessage({ id: request.id, message: messageOf(error), code: (error as NodeJS.ErrnoException)?.code } satisfies EncodeReply);
  }
});
