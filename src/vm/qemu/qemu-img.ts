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
    throw new MacvmError('MACVM_CLONE_FAILED', `qemu-img could not create the overlay ${overlay}: ${result.stderr.trim() || result.message}`, {
      hint: result.failed && (result as { code?: string }).code === 'ENOENT' ? 'Install qemu-utils (apt-get install qemu-utils).' : undefined,
    });
  }
}

export async function virtualSizeBytes(disk: string): Promise<number> {
  const result = await execa('qemu-img', ['info', '--output=json', '-U', disk]);
  return (JSON.parse(result.stdout) as { 'virtual-size': number })['virtual-size'];
}
