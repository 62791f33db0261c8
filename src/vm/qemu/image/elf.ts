import { readFile } from 'node:fs/promises';

/**
 * Just enough of ELF64 (little-endian, what Debian amd64 ships) to assemble the guest
 * without binutils or kmod on the host: the shared libraries a program needs (DT_NEEDED)
 * and a kernel module's `.modinfo` strings (its `depends=`).
 */
interface Section {
  name: string;
  type: number;
  offset: number;
  size: number;
  link: number;
}

const SHT_DYNAMIC = 6;
const DT_NULL = 0n;
const DT_NEEDED = 1n;

function parseSections(buf: Buffer, path: string): Section[] {
  if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${path} is not an ELF file`);
  if (buf[4] !== 2 || buf[5] !== 1) throw new Error(`${path} is not a little-endian 64-bit ELF file`);
  const shoff = Number(buf.readBigUInt64LE(0x28));
  const shentsize = buf.readUInt16LE(0x3a);
  const shnum = buf.readUInt16LE(0x3c);
  const shstrndx = buf.readUInt16LE(0x3e);
  if (shoff === 0 || shnum === 0) return [];
  const raw = [];
  for (let i = 0; i < shnum; i++) {
    const at = shoff + i * shentsize;
    raw.push({
      nameOffset: buf.readUInt32LE(at),
      type: buf.readUInt32LE(at + 4),
      offset: Number(buf.readBigUInt64LE(at + 0x18)),
      size: Number(buf.readBigUInt64LE(at + 0x20)),
      link: buf.readUInt32LE(at + 0x28),
    });
  }
  const names = raw[shstrndx];
  return raw.map((s) => ({ name: names ? cString(buf, names.offset + s.nameOffset) : '', type: s.type, offset: s.offset, size: s.size, link: s.link }));
}

function cString(buf: Buffer, at: number): string {
  const end = buf.indexOf(0, at);
  return buf.toString('latin1', at, end < 0 ? buf.length : end);
}

/** The sonames a program or library asks the dynamic loader for, in file order. */
export function neededLibraries(buf: Buffer, path = 'file'): string[] {
  return dynamicLinking(buf, path).needed;
}

const DT_RPATH = 15n;
const DT_RUNPATH = 29n;

/**
 * What the dynamic loader reads from a program: the sonames it needs, in file order, and
 * the directories its DT_RUNPATH (or older DT_RPATH) adds to the search, `$ORIGIN` unexpanded.
 */
export function dynamicLinking(buf: Buffer, path = 'file'): { needed: string[]; runpath: string[] } {
  const sections = parseSections(buf, path);
  const dynamic = sections.find((s) => s.type === SHT_DYNAMIC);
  if (!dynamic) return { needed: [], runpath: [] }; // statically linked
  const strtab = sections[dynamic.link];
  if (!strtab) throw new Error(`${path}: .dynamic has no string table`);
  const needed: string[] = [];
  const runpath: string[] = [];
  for (let at = dynamic.offset; at + 16 <= dynamic.offset + dynamic.size; at += 16) {
    const tag = buf.readBigUInt64LE(at);
    if (tag === DT_NULL) break;
    const value = () => cString(buf, strtab.offset + Number(buf.readBigUInt64LE(at + 8)));
    if (tag === DT_NEEDED) needed.push(value());
    else if (tag === DT_RUNPATH || tag === DT_RPATH) runpath.push(...value().split(':').filter(Boolean));
  }
  return { needed, runpath };
}

/** A kernel module's `.modinfo` as key → values (keys like `alias` repeat). */
export function moduleInfo(buf: Buffer, path = 'module'): Map<string, string[]> {
  const section = parseSections(buf, path).find((s) => s.name === '.modinfo');
  if (!section) throw new Error(`${path} has no .modinfo section; is it a kernel module?`);
  const info = new Map<string, string[]>();
  for (const entry of buf.toString('latin1', section.offset, section.offset + section.size).split('\0')) {
    const eq = entry.indexOf('=');
    if (eq <= 0) continue;
    const key = entry.slice(0, eq);
    info.set(key, [...(info.get(key) ?? []), entry.slice(eq + 1)]);
  }
  return info;
}

export async function readNeededLibraries(path: string): Promise<string[]> {
  return neededLibraries(await readFile(path), path);
}

export async function readDynamicLinking(path: string): Promise<{ needed: string[]; runpath: string[] }> {
  return dynamicLinking(await readFile(path), path);
}

export async function readModuleInfo(path: string): Promise<Map<string, string[]>> {
  return moduleInfo(await readFile(path), path);
}
