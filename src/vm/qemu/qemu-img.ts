import { stat } from 'node:fs/promises';
import { execa } from 'execa';
import { MacvmError } from '../../errors.js';

/**
 * A clone is a qcow2 overlay whose backing file is the image's read-only base: writes go
 * to the overlay, the base is never opened for writing, and creating it costs the same
 * whatever the base's size.
 */
export async function createOverlay(base: string, overlay: string, sizeGiB?: number): Promise<void> {
  const args = ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', overlay];
  if (sizeGiB !== undefined) args.push(`${sizeGiB}G`);
  const result = await execa('qemu-img', args, { reject: false });
  if (result.exitCode !== 0) {
    const said = String(result.stderr ?? '').trim() || String(result.message ?? 'no error output');
    // qemu-img opens the base to create the overlay; when that fails the image is at fault, not the clone.
    if (/backing (image|file)/i.test(said)) throw corruptBase(base, said);
    throw new MacvmError('MACVM_CLONE_FAILED', `qemu-img could not create the overlay ${overlay}: ${said}`, {
      hint: result.failed && (result as { code?: string }).code === 'ENOENT' ? 'Install qemu-utils (apt-get install qemu-utils).' : undefined,
    });
  }
}

/** Bases already found sound in this process, keyed by path, size and mtime: checked once, cloned often. */
const soundBases = new Map<string, number>();

/**
 * The virtual size of an image's base disk, which must be a sound qcow2: anything else
 * (garbage, another format, a truncated copy) fails here as MACVM_IMAGE_CORRUPT instead of
 * later as a clone or boot failure. `qemu-img check` reads only metadata (~20-50 ms for the
 * images built here), and runs once per base file per process.
 */
export async function virtualSizeBytes(disk: string): Promise<number> {
  const file = await stat(disk).catch(() => undefined);
  const key = file ? `${disk}\0${file.size}\0${file.mtimeMs}` : disk;
  const known = soundBases.get(key);
  if (known !== undefined) return known;
  const info = await execa('qemu-img', ['info', '--output=json', '-U', disk], { reject: false });
  if (info.exitCode !== 0) throw corruptBase(disk, String(info.stderr ?? '').trim() || String(info.message ?? 'qemu-img info failed'));
  const facts = JSON.parse(info.stdout) as { 'virtual-size': number; format?: string };
  if (facts.format !== 'qcow2') throw corruptBase(disk, `it is ${facts.format ?? 'of no known format'}, not qcow2`);
  // Exit codes: 0 sound, 1 check failed to run, 2 corruptions, 3 only leaked clusters (harmless for a read-only base).
  const check = await execa('qemu-img', ['check', '-U', '-q', disk], { reject: false });
  if (check.exitCode !== 0 && check.exitCode !== 3) {
    const said = String(check.stderr || check.stdout || '').trim().split('\n');
    throw corruptBase(disk, `qemu-img check found it damaged: ${said.slice(0, 3).join('; ')}${said.length > 3 ? ` (and ${said.length - 3} more)` : ''}`);
  }
  soundBases.set(key, facts['virtual-size']);
  return facts['virtual-size'];
}

function corruptBase(disk: string, why: string): MacvmError {
  return new MacvmError('MACVM_IMAGE_CORRUPT', `The image's base disk ${disk} is not a usable qcow2 image: ${why}`, {
    hint: 'The image is damaged (an interrupted copy or download, a full disk): rebuild it with `macvm image build <name> --force`, or pull it again.',
    details: { disk },
  });
}

/** What `qemu-img info` says about a disk that decides whether it can travel alone. */
export interface DiskFacts {
  format?: string;
  virtualSize: number;
  /** Set for an overlay (a derived image's layer, a clone): its base lives elsewhere. */
  backingFile?: string;
  /** Set for a qcow2 whose data sits in an external file. */
  dataFile?: string;
}

/**
 * `qemu-img info` reads only the file itself (it opens no backing file), so this is safe to
 * run on a disk that came from elsewhere, whatever it names as its backing or data file.
 */
export async function diskFacts(disk: string): Promise<DiskFacts> {
  const info = await execa('qemu-img', ['info', '--output=json', '-U', disk], { reject: false });
  if (info.exitCode !== 0) throw corruptBase(disk, String(info.stderr ?? '').trim() || String(info.message ?? 'qemu-img info failed'));
  const facts = JSON.parse(info.stdout) as {
    format?: string;
    'virtual-size': number;
    'backing-filename'?: string;
    'format-specific'?: { data?: { 'data-file'?: string } };
  };
  return {
    format: facts.format,
    virtualSize: facts['virtual-size'],
    ...(facts['backing-filename'] ? { backingFile: facts['backing-filename'] } : {}),
    ...(facts['format-specific']?.data?.['data-file'] ? { dataFile: facts['format-specific'].data['data-file'] } : {}),
  };
}
