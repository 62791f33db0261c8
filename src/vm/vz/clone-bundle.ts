import { constants } from 'node:fs';
import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { MacvmError } from '../../errors.js';
import { BUNDLE_FILES } from './bundle-config.js';

/**
 * Copy-on-write copy of a bundle. On APFS, COPYFILE_FICLONE_FORCE is clonefile(2): O(1)
 * whatever the disk size, the clone shares blocks with the image until the guest writes.
 * Without copy-on-write an 80 GB disk copy would take minutes, so that is an error unless
 * `allowFullCopy` (tests, small disks) says otherwise.
 */
export async function cloneBundle(source: string, target: string, options: { allowFullCopy?: boolean } = {}): Promise<'clone' | 'copy'> {
  await mkdir(target, { recursive: true, mode: 0o700 });
  let how: 'clone' | 'copy' = 'clone';
  for (const file of [BUNDLE_FILES.config, BUNDLE_FILES.nvram, BUNDLE_FILES.disk]) {
    const from = join(source, file);
    const to = join(target, file);
    try {
      await copyFile(from, to, constants.COPYFILE_FICLONE_FORCE);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const noCow = code === 'ENOTSUP' || code === 'EXDEV' || code === 'ENOSYS' || code === 'EOPNOTSUPP' || code === 'EINVAL';
      if (!noCow) {
        throw new MacvmError('MACVM_CLONE_FAILED', `Could not clone ${from}: ${(error as Error).message}`, { cause: error });
      }
      if (!options.allowFullCopy) {
        throw new MacvmError('MACVM_CLONE_FAILED', `${from} cannot be cloned copy-on-write to ${to} (${code}).`, {
          hint: 'Keep MACVM_HOME (images and runtime dirs) on one APFS volume, so clones are instant clonefile copies.',
          cause: error,
        });
      }
      await copyFile(from, to);
      how = 'copy';
    }
  }
  return how;
}
