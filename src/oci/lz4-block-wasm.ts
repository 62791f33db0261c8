/**
 * The LZ4 block decoder of ./lz4-block.ts again, as one WebAssembly function: the same format,
 * the same checks before every read and write, three to four times the speed on disk data
 * (measured on linux-browser's disk: 0.5 s instead of 1.8 s of CPU for a 512 MiB piece, about
 * what Debian's lz4 CLI takes). A disk's sequences are mostly a few literals and a short match;
 * here each such sequence is a handful of unaligned 8-byte loads and stores, where JavaScript
 * pays for every byte and every bounds check.
 *
 * The module is assembled below, at load time, from its instructions (WebAssembly's binary
 * format, https://webassembly.github.io/spec/core/binary/), so no toolchain and no binary file
 * come with it. It imports its memory; each decoder owns one, laid out as
 *
 *   [0, INPUT_BYTES)                     the compressed block, copied in by the caller
 *   [OUTPUT_AT, OUTPUT_AT + outputBytes) decoded bytes, the window before them
 *
 * decode() answers where the decoded bytes end, or -1 for a block that is not valid. Which check
 * failed is for the caller to find out (decodeLz4Block on the same block says it in words): this
 * keeps the function small. Like decodeLz4Block it may write past the returned end, never at or
 * beyond outputEnd, and never reads input outside [inputStart, inputEnd).
 */

/** Room for one compressed block: lz4BlockBound(64 KiB), Apple's block size, is 65 809 bytes. */
export const INPUT_BYTES = 128 * 1024;
/** Where the output area starts in the decoder's memory. */
export const OUTPUT_AT = INPUT_BYTES;
const PAGE = 64 * 1024;

export interface WasmLz4Block {
  /** The decoder's whole memory: the input area at 0, the output area at OUTPUT_AT. */
  readonly memory: Uint8Array;
  /** Decodes [inputStart, inputEnd) to [outputStart, outputEnd), matches reaching back to dictStart (memory offsets); -1 if the block is not valid. */
  decode(inputStart: number, inputEnd: number, outputStart: number, outputEnd: number, dictStart: number): number;
}

let compiled: WebAssembly.Module | undefined;

/**
 * A decoder with `outputBytes` of output area (window included). Its memory never grows, so
 * views of it stay valid. Making one costs about a millisecond (an address-space reservation).
 */
export function createWasmLz4Block(outputBytes: number): WasmLz4Block {
  compiled ??= new WebAssembly.Module(moduleBytes());
  const pages = Math.ceil((OUTPUT_AT + outputBytes) / PAGE);
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
  const instance = new WebAssembly.Instance(compiled, { env: { memory } });
  return { memory: new Uint8Array(memory.buffer), decode: instance.exports.decode as WasmLz4Block['decode'] };
}

// ---- instructions (spec 5.4) -------------------------------------------------------------

type Code = number[];

/** Locals: the five parameters, then the function's own. */
const IP = 0;
const IP_END = 1;
const OP = 2;
const OP_END = 3;
const DICT = 4;
const TOKEN = 5;
const LENGTH = 6;
const OFFSET = 7;
const REF = 8;
const I = 9;
const OWN_LOCALS = 5;

const VOID = 0x40;
const I32 = 0x7f;

const get = (local: number): Code => [0x20, local];
const setTo = (local: number, value: Code): Code => [...value, 0x21, local];
const c = (value: number): Code => [0x41, ...sleb(value)];
const binary = (opcode: number) => (a: Code, b: Code): Code => [...a, ...b, opcode];
const eq = binary(0x46);
const ltU = binary(0x49);
const gtU = binary(0x4b);
const leU = binary(0x4d);
const geU = binary(0x4f);
const add = binary(0x6a);
const sub = binary(0x6b);
const and = binary(0x71);
const or = binary(0x72);
const shrU = binary(0x76);
const eqz = (a: Code): Code => [...a, 0x45];
/** b - a for two locals: the room from a up to b. */
const room = (from: number, to: number): Code => sub(get(to), get(from));

/** Memory instructions take an alignment hint (0: unaligned) and an offset. */
const load8 = (address: Code): Code => [...address, 0x2d, 0, 0];
const load16 = (address: Code): Code => [...address, 0x2f, 0, 0];
const store8 = (address: Code, value: Code): Code => [...address, ...value, 0x3a, 0, 0];
/** 8 bytes from `from + offset` to `to + offset` through an i64. */
const copy8 = (to: Code, from: Code, offset = 0): Code => [...to, ...from, 0x29, 0, ...uleb(offset), 0x37, 0, ...uleb(offset)];
const memoryCopy = (to: Code, from: Code, length: Code): Code => [...to, ...from, ...length, 0xfc, 10, 0, 0];
const memoryFill = (to: Code, value: Code, length: Code): Code => [...to, ...value, ...length, 0xfc, 11, 0];

const block = (body: Code): Code => [0x02, VOID, ...body, 0x0b];
const loop = (body: Code): Code => [0x03, VOID, ...body, 0x0b];
const ifThen = (condition: Code, then: Code): Code => [...condition, 0x04, VOID, ...then, 0x0b];
const ifElse = (condition: Code, then: Code, otherwise: Code): Code => [...condition, 0x04, VOID, ...then, 0x05, ...otherwise, 0x0b];
/** Branch `depth` blocks out (0: the innermost; to a loop: its next pass). */
const br = (depth: number): Code => [0x0c, depth];
const brIf = (depth: number, condition: Code): Code => [...condition, 0x0d, depth];
const answer = (value: Code): Code => [...value, 0x0f];
const fail = answer(c(-1));

/** Adds the 255-continued length bytes at IP to `local`; fails if they run past the input. */
const extendLength = (local: number): Code =>
  loop([
    ...ifThen(geU(get(IP), get(IP_END)), fail),
    ...setTo(I, load8(get(IP))),
    ...setTo(IP, add(get(IP), c(1))),
    ...setTo(local, add(get(local), get(I))),
    ...brIf(0, eq(get(I), c(255))),
  ]);

/** LENGTH bytes from REF to OP, forward, `step` at a time (8 only for an offset of 8 or more, with room for 7 bytes past). */
const copyForward = (step: 1 | 8): Code => [
  ...setTo(I, c(0)),
  ...loop([
    ...(step === 8 ? copy8(add(get(OP), get(I)), add(get(REF), get(I))) : store8(add(get(OP), get(I)), load8(add(get(REF), get(I))))),
    ...setTo(I, add(get(I), c(step))),
    ...brIf(0, ltU(get(I), get(LENGTH))),
  ]),
];

/** decode(ip, ipEnd, op, opEnd, dict) → i32: the block format of ./lz4-block.ts, step by step. */
function decodeBody(): Code {
  return [
    ...ifThen(eq(get(IP), get(IP_END)), fail), // an empty block has no token
    ...loop([
      // $sequence. A block ends after literals, never after a match.
      ...ifThen(geU(get(IP), get(IP_END)), fail),
      ...setTo(TOKEN, load8(get(IP))),
      ...setTo(IP, add(get(IP), c(1))),
      ...block([
        // $match: leaving this block, IP is at the match's offset.
        ...block([
          // $general: leaving this block, the literals are still to be read.
          // The common case first: under 15 literals, a match of under 19 bytes whose offset is
          // 8 or more, both ends far enough away for fixed copies (16 bytes of literals, 24 of match).
          ...brIf(0, or(or(geU(get(TOKEN), c(0xf0)), eq(and(get(TOKEN), c(15)), c(15))), or(ltU(room(IP, IP_END), c(32)), ltU(room(OP, OP_END), c(40))))),
          ...copy8(get(OP), get(IP)),
          ...copy8(get(OP), get(IP), 8),
          ...setTo(LENGTH, shrU(get(TOKEN), c(4))),
          ...setTo(IP, add(get(IP), get(LENGTH))),
          ...setTo(OP, add(get(OP), get(LENGTH))),
          ...setTo(OFFSET, load16(get(IP))),
          // A short or out-of-window offset: the general match code checks it and says so.
          ...brIf(1, or(ltU(get(OFFSET), c(8)), gtU(get(OFFSET), room(DICT, OP)))),
          ...setTo(IP, add(get(IP), c(2))),
          ...setTo(REF, sub(get(OP), get(OFFSET))),
          ...copy8(get(OP), get(REF)),
          ...copy8(get(OP), get(REF), 8),
          ...copy8(get(OP), get(REF), 16),
          ...setTo(OP, add(get(OP), add(and(get(TOKEN), c(15)), c(4)))),
          ...br(2), // next sequence
        ]),
        // Literals, any count.
        ...setTo(LENGTH, shrU(get(TOKEN), c(4))),
        ...ifThen(eq(get(LENGTH), c(15)), extendLength(LENGTH)),
        ...ifThen(get(LENGTH), [
          ...ifThen(gtU(get(LENGTH), room(IP, IP_END)), fail),
          ...ifThen(gtU(get(LENGTH), room(OP, OP_END)), fail),
          ...ifElse(
            and(and(leU(get(LENGTH), c(16)), geU(room(IP, IP_END), c(16))), geU(room(OP, OP_END), c(16))),
            [...copy8(get(OP), get(IP)), ...copy8(get(OP), get(IP), 8)],
            memoryCopy(get(OP), get(IP), get(LENGTH)),
          ),
          ...setTo(IP, add(get(IP), get(LENGTH))),
          ...setTo(OP, add(get(OP), get(LENGTH))),
        ]),
        // The last sequence: literals only.
        ...ifThen(eq(get(IP), get(IP_END)), answer(get(OP))),
      ]),
      // The match: an offset of 1 up to what the window holds, then the length.
      ...ifThen(ltU(room(IP, IP_END), c(2)), fail),
      ...setTo(OFFSET, load16(get(IP))),
      ...ifThen(or(eqz(get(OFFSET)), gtU(get(OFFSET), room(DICT, OP))), fail),
      ...setTo(IP, add(get(IP), c(2))),
      ...setTo(LENGTH, and(get(TOKEN), c(15))),
      ...ifThen(eq(get(LENGTH), c(15)), extendLength(LENGTH)),
      ...setTo(LENGTH, add(get(LENGTH), c(4))),
      ...ifThen(gtU(get(LENGTH), room(OP, OP_END)), fail),
      ...setTo(REF, sub(get(OP), get(OFFSET))),
      ...ifElse(
        geU(get(OFFSET), c(8)),
        // 8 bytes at a time read only bytes already final, even where the match overlaps itself.
        ifElse(
          and(leU(get(LENGTH), c(16)), geU(room(OP, OP_END), c(16))),
          [...copy8(get(OP), get(REF)), ...copy8(get(OP), get(REF), 8)],
          ifElse(
            geU(get(OFFSET), get(LENGTH)),
            memoryCopy(get(OP), get(REF), get(LENGTH)),
            ifElse(geU(room(OP, OP_END), add(get(LENGTH), c(8))), copyForward(8), copyForward(1)),
          ),
        ),
        // Offset 1 is a run of one byte (how zeros compress); 2 to 7 a short repeating pattern.
        ifElse(eq(get(OFFSET), c(1)), memoryFill(get(OP), load8(get(REF)), get(LENGTH)), copyForward(1)),
      ),
      ...setTo(OP, add(get(OP), get(LENGTH))),
      ...br(0), // next sequence
    ]),
    // Not reached (every pass of the loop branches back or returns); the function still ends with its i32.
    ...c(-1),
  ];
}

// ---- the module around it (spec 5.5) -----------------------------------------------------

function moduleBytes(): ArrayBuffer {
  const body = [...vector([[OWN_LOCALS, I32]]), ...decodeBody(), 0x0b];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00], // "\0asm", version 1
    ...section(1, vector([[0x60, ...vector([[I32], [I32], [I32], [I32], [I32]]), ...vector([[I32]])]])), // type 0: (i32 × 5) → i32
    ...section(2, vector([[...name('env'), ...name('memory'), 0x02, 0x00, 0x01]])), // import memory env.memory, at least 1 page
    ...section(3, vector([[0]])), // function 0 has type 0
    ...section(7, vector([[...name('decode'), 0x00, 0]])), // export function 0 as "decode"
    ...section(10, vector([[...uleb(body.length), ...body]])),
  ]).buffer;
}

function section(id: number, content: number[]): number[] {
  return [id, ...uleb(content.length), ...content];
}

function vector(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function name(text: string): number[] {
  const bytes = [...new TextEncoder().encode(text)];
  return [...uleb(bytes.length), ...bytes];
}

function uleb(value: number): number[] {
  const out: number[] = [];
  do {
    const byte = value & 0x7f;
    value >>>= 7;
    out.push(value === 0 ? byte : byte | 0x80);
  } while (value !== 0);
  return out;
}

function sleb(value: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = value & 0x7f;
    value >>= 7;
    if ((value === 0 && (byte & 0x40) === 0) || (value === -1 && (byte & 0x40) !== 0)) return [...out, byte];
    out.push(byte | 0x80);
  }
}
