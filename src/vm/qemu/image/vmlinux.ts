/**
 * Unpacks the uncompressed ELF kernel (vmlinux) from a Debian x86 bzImage. QEMU boots
 * an ELF kernel that carries a PVH note directly, skipping the bzImage's self-decompression,
 * which under TCG is emulated byte by byte (DESIGN.md: ~0.5 s saved per boot).
 * Debian's kernels are LZ4-compressed (CONFIG_KERNEL_LZ4), so LZ4 is all this decodes.
 */

/** Where the boot protocol header keeps the compressed payload (offsets in the bzImage). */
const SETUP_SECTS = 0x1f1;
const HEADER_MAGIC_AT = 0x202; // "HdrS"
const PAYLOAD_OFFSET = 0x248;
const PAYLOAD_LENGTH = 0x24c;
const LZ4_LEGACY_MAGIC = 0x184c2102;
const LZ4_LEGACY_BLOCK = 8 << 20;
const XEN_ELFNOTE_PHYS32_ENTRY = 18;

export function bzImagePayload(bzImage: Buffer): Buffer {
  if (bzImage.length < 0x260 || bzImage.toString('latin1', HEADER_MAGIC_AT, HEADER_MAGIC_AT + 4) !== 'HdrS') {
    throw new Error('not an x86 bzImage (no "HdrS" boot header)');
  }
  const setupSects = bzImage[SETUP_SECTS] || 4;
  const start = (setupSects + 1) * 512 + bzImage.readUInt32LE(PAYLOAD_OFFSET);
  const length = bzImage.readUInt32LE(PAYLOAD_LENGTH);
  if (start + length > bzImage.length) throw new Error('bzImage payload runs past the end of the file');
  return bzImage.subarray(start, start + length);
}

/**
 * The kernel's LZ4 "legacy" stream: magic, then blocks each prefixed with its compressed
 * size; the build appends the uncompressed size as a final 4-byte word.
 */
export function decompressLz4Legacy(stream: Buffer): Buffer {
  if (stream.readUInt32LE(0) !== LZ4_LEGACY_MAGIC) throw new Error('payload is not LZ4 (legacy format); only LZ4-compressed kernels are supported');
  const expected = stream.readUInt32LE(stream.length - 4);
  const out = Buffer.alloc(expected);
  let written = 0;
  let at = 4;
  while (at + 4 <= stream.length - 4) {
    const size = stream.readUInt32LE(at);
    // A word equal to the magic starts a new concatenated stream.
    if (size === LZ4_LEGACY_MAGIC) {
      at += 4;
      continue;
    }
    at += 4;
    if (size > LZ4_LEGACY_BLOCK + LZ4_LEGACY_BLOCK / 255 + 16 || at + size > stream.length) break;
    written = decodeLz4Block(stream.subarray(at, at + size), out, written);
    at += size;
  }
  if (written !== expected) throw new Error(`LZ4 payload decoded to ${written} bytes, expected ${expected}`);
  return out;
}

/** One LZ4 block: sequences of literals followed by a back-reference copy. */
export function decodeLz4Block(input: Buffer, out: Buffer, outStart: number): number {
  let ip = 0;
  let op = outStart;
  while (ip < input.length) {
    const token = input[ip++]!;
    let literals = token >> 4;
    if (literals === 15) {
      let byte;
      do {
        byte = input[ip++]!;
        literals += byte;
      } while (byte === 255);
    }
    if (op + literals > out.length || ip + literals > input.length) throw new Error('LZ4 literal run out of bounds');
    input.copy(out, op, ip, ip + literals);
    ip += literals;
    op += literals;
    if (ip >= input.length) break; // the last sequence has literals only
    const offset = input[ip]! | (input[ip + 1]! << 8);
    ip += 2;
    if (offset === 0 || offset > op) throw new Error('LZ4 match offset out of bounds');
    let length = token & 15;
    if (length === 15) {
      let byte;
      do {
        byte = input[ip++]!;
        length += byte;
      } while (byte === 255);
    }
    length += 4;
    if (op + length > out.length) throw new Error('LZ4 match runs past the output');
    let from = op - offset;
    if (offset >= length) {
      out.copy(out, op, from, from + length);
      op += length;
    } else {
      // Overlapping copy repeats the last `offset` bytes.
      for (let i = 0; i < length; i++) out[op++] = out[from++]!;
    }
  }
  return op;
}

/** Whether an ELF kernel has the Xen PVH entry note QEMU needs to boot it directly. */
export function hasPvhNote(elf: Buffer): boolean {
  if (elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2) return false;
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const phentsize = elf.readUInt16LE(0x36);
  const phnum = elf.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (elf.readUInt32LE(ph) !== 4) continue; // PT_NOTE
    const offset = Number(elf.readBigUInt64LE(ph + 8));
    const size = Number(elf.readBigUInt64LE(ph + 0x20));
    for (let at = offset; at + 12 <= offset + size; ) {
      const nameSize = elf.readUInt32LE(at);
      const descSize = elf.readUInt32LE(at + 4);
      const type = elf.readUInt32LE(at + 8);
      const name = elf.toString('latin1', at + 12, at + 12 + nameSize).replace(/\0+$/, '');
      if (name === 'Xen' && type === XEN_ELFNOTE_PHYS32_ENTRY) return true;
      at += 12 + align4(nameSize) + align4(descSize);
    }
  }
  return false;
}

function align4(n: number): number {
  return (n + 3) & ~3;
}

/** The PVH-bootable vmlinux inside a bzImage, or an error saying why it cannot be had. */
export function extractVmlinux(bzImage: Buffer): Buffer {
  const elf = decompressLz4Legacy(bzImagePayload(bzImage));
  if (!hasPvhNote(elf)) throw new Error('the unpacked kernel has no PVH entry note (CONFIG_PVH); QEMU cannot boot it directly');
  return elf;
}
