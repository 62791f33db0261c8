/**
 * `node cleanup-main.js '<json CleanupInfo>'`: deletes one Orchard VM (see ./cleanup.ts).
 * Exit 0 when the VM is gone (deleted now, or already), 1 otherwise, with the reason on stderr
 * (never the token).
 */
import { messageOf } from '../../errors.js';
import type { CleanupInfo } from './cleanup.js';
import { OrchardClient } from './client.js';
import { orchardError } from './orchard-error.js';
import { recordedControllerTarget } from './recorded-controller.js';

async function main(): Promise<number> {
  const info = JSON.parse(process.argv[2] ?? '{}') as Partial<CleanupInfo>;
  if (!info.controller || !info.vm) {
    process.stderr.write('usage: cleanup-main \'{"controller":"https://…","vm":"macvm-…"}\'\n');
    return 2;
  }
  const target = await recordedControllerTarget(info as CleanupInfo, { warn: (line) => process.stderr.write(`warning: ${line}\n`) });
  const client = new OrchardClient(target);
  try {
    const existed = await client.deleteVm(info.vm, AbortSignal.timeout(30_000));
    process.stdout.write(`${existed ? 'deleted' : 'already gone'}: Orchard VM ${info.vm} on ${info.controller}\n`);
    return 0;
  } catch (error) {
    // One line: `macvm gc` and the reaper's log keep only the end of stderr.
    process.stderr.write(`${orchardError(error, { client, action: `delete VM "${info.vm}"`, fallback: 'MACVM_STOP_FAILED', vm: info.vm }).message.split('\n')[0]}\n`);
    return 1;
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${messageOf(error).split('\n')[0]}\n`);
    process.exit(1);
  },
);
