import { execa } from 'execa';

/**
 * An independent LZ4 encoder and decoder for tests: Debian's `lz4` CLI, re-framed.
 *
 * The CLI writes the LZ4 *frame* format (magic 0x184D2204). With linked blocks (`-BD`) and
 * 64 KiB blocks (`-B4`) its blocks are exactly what Apple's COMPRESSION_LZ4 stream carries: LZ4
 * blocks whose matches may reach back into earlier blocks' output. Re-wrapping each as
 * `bv41` (or `bv4-` for a block the CLI stored uncompressed) plus a closing `bv4$` gives an
 * Apple stream that no code of ours encoded. The reverse wrapper lets the CLI judge the
 * blocks our encoder writes. Neither direction uses src/oci, so a shared mistake cannot
 * make both sides agree.
 *
 * Frame layout (lz4_Frame_format.md): magic, FLG, BD, [content size 8], [dict id 4], HC;
 * blocks of u32 LE size (high bit: stored uncompressed) + data [+ block checksum 4];
 * end mark u32 0; [content checksum 4].
 */

const FRAME_MAGIC = 0x184d2204;
const BLOCK_64K = 64 * 1024;
const MAGIC_COMPRESSED = Buffer.from('bv41', 'latin1');
const MAGIC_RAW = Buffer.from('bv4-', 'latin1');
const MAGIC_END = Buffer.from('bv4$', 'latin1');

/** Runs the real `lz4` CLI (linked 64 KiB blocks) on `data` and re-wraps its blocks in Apple's framing. */
export async function appleLz4FromLz4Cli(data: Buffer): Promise<Buffer> {
  const frame = await runLz4(['-q', '-BD', '-B4', '--no-frame-crc', '-c'], data);
  const blocks = parseFrameBlocks(frame);
  const parts: Buffer[] = [];
  let remaining = data.length;
  blocks.forEach((block, index) => {
    const last = index === blocks.length - 1;
    // The CLI fills every block to the block size before starting the next; only the last is short.
    const decodedSize = block.stored ? block.data.length : last ? remaining : block.maxSize;
    if (decodedSize <= 0 || decodedSize > block.maxSize || decodedSize > remaining) {
      throw new Error(`lz4 CLI frame: block ${index} would decode to ${decodedSize} bytes with ${remaining} left`);
    }
    remaining -= decodedSize;
    parts.push(block.stored ? Buffer.concat([MAGIC_RAW, u32(decodedSize)]) : Buffer.concat([MAGIC_COMPRESSED, u32(decodedSize), u32(block.data.length)]));
    parts.push(block.data);
  });
  if (remaining !== 0) throw new Error(`lz4 CLI frame: blocks cover ${data.length - remaining} of ${data.length} bytes`);
  parts.push(MAGIC_END);
  return Buffer.concat(parts);
}

/**
 * Decodes an Apple LZ4 stream with the real `lz4` CLI: each `bv41`/`bv4-` block becomes a
 * block of an LZ4 frame with linked 64 KiB blocks. Blocks must decode to at most 64 KiB
 * (ours do). Parses the Apple framing itself, independently of src/oci.
 */
export async function lz4CliDecodeAppleLz4(stream: Uint8Array): Promise<Buffer> {
  const input = Buffer.from(stream.buffer, stream.byteOffset, stream.byteLength);
  const parts: Buffer[] = [await linked64kFrameHeader()];
  let at = 0;
  for (;;) {
    const magic = input.subarray(at, at + 4);
    if (magic.equals(MAGIC_END)) {
      if (at + 4 !== input.length) throw new Error(`Apple LZ4 stream: ${input.length - at - 4} bytes after bv4$`);
      break;
    }
    if (magic.equals(MAGIC_COMPRESSED)) {
      const decoded = input.readUInt32LE(at + 4);
      const encoded = input.readUInt32LE(at + 8);
      if (decoded > BLOCK_64K) throw new Error(`Apple LZ4 stream: a bv41 block of ${decoded} bytes does not fit a 64 KiB LZ4 frame block`);
      parts.push(u32(encoded), input.subarray(at + 12, at + 12 + encoded));
      at += 12 + encoded;
    } else if (magic.equals(MAGIC_RAW)) {
      const size = input.readUInt32LE(at + 4);
      if (size > BLOCK_64K) throw new Error(`Apple LZ4 stream: a bv4- block of ${size} bytes does not fit a 64 KiB LZ4 frame block`);
      parts.push(u32((size | 0x80000000) >>> 0), input.subarray(at + 8, at + 8 + size));
      at += 8 + size;
    } else {
      throw new Error(`Apple LZ4 stream: unknown block magic at byte ${at}`);
    }
    if (at > input.length) throw new Error('Apple LZ4 stream: truncated block');
  }
  parts.push(u32(0));
  return runLz4(['-q', '-d', '-c'], Buffer.concat(parts));
}

interface FrameBlock {
  data: Buffer;
  stored: boolean;
  maxSize: number;
}

function parseFrameBlocks(frame: Buffer): FrameBlock[] {
  if (frame.length < 7 || frame.readUInt32LE(0) !== FRAME_MAGIC) throw new Error('lz4 CLI output is not an LZ4 frame');
  const flg = frame[4]!;
  const bd = frame[5]!;
  if (flg >> 6 !== 1) throw new Error(`lz4 CLI frame: version ${flg >> 6}`);
  const blockChecksum = (flg & 0x10) !== 0;
  const contentSize = (flg & 0x08) !== 0;
  const contentChecksum = (flg & 0x04) !== 0;
  const dictId = (flg & 0x01) !== 0;
  const maxSize = [0, 0, 0, 0, 64 * 1024, 256 * 1024, 1024 * 1024, 4 * 1024 * 1024][(bd >> 4) & 7] ?? 0;
  if (maxSize === 0) throw new Error(`lz4 CLI frame: block size id ${(bd >> 4) & 7}`);
  let at = 6 + (contentSize ? 8 : 0) + (dictId ? 4 : 0) + 1;
  const blocks: FrameBlock[] = [];
  for (;;) {
    const word = frame.readUInt32LE(at);
    at += 4;
    if (word === 0) break;
    const size = word & 0x7fffffff;
    blocks.push({ data: frame.subarray(at, at + size), stored: (word & 0x80000000) !== 0, maxSize });
    at += size + (blockChecksum ? 4 : 0);
    if (at > frame.length) throw new Error('lz4 CLI frame: truncated block');
  }
  at += contentChecksum ? 4 : 0;
  if (at !== frame.length) throw new Error(`lz4 CLI frame: ${frame.length - at} bytes after the end mark`);
  return blocks;
}

let headerOnce: Promise<Buffer> | undefined;

/**
 * Magic, FLG, BD and header checksum of a frame with linked 64 KiB blocks and no checksums,
 * taken from a frame the CLI itself wrote with those settings (so the header checksum, an
 * xxHash32 byte, is the CLI's own). The input spans two blocks because the CLI marks a
 * single-block frame independent.
 */
function linked64kFrameHeader(): Promise<Buffer> {
  headerOnce ??= runLz4(['-q', '-BD', '-B4', '--no-frame-crc', '-c'], Buffer.alloc(BLOCK_64K + 1)).then((frame) => {
    if (frame.readUInt32LE(0) !== FRAME_MAGIC || frame[4] !== 0x40 || frame[5] !== 0x40) {
      throw new Error(`lz4 CLI wrote an unexpected frame header ${frame.subarray(0, 7).toString('hex')}`);
    }
    return Buffer.from(frame.subarray(0, 7));
  });
  return headerOnce;
}

async function runLz4(args: string[], input: Uint8Array): Promise<Buffer> {
  const { stdout } = await execa('lz4', args, { input, encoding: 'buffer', maxBuffer: 4 * 1024 * 1024 * 1024, stripFinalNewline: false });
  return Buffer.from(stdout.buffer, stdout.byteOffset, stdout.byteLength);
}

function u32(value: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32LE(value >>> 0);
  return out;
}
