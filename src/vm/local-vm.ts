import { MacvmError } from '../errors.js';
import type { VmListing } from './provider-definition.js';
import type { VmRecord } from './runtime-dir.js';
import type { GuestEndpoint } from './types.js';

/**
 * How `vm ls` shows a VM that is a process on this host (qemu, vz, tart) or a machine reached
 * directly (ssh): running while its recorded pid is the same process, SSH where the record says.
 */
export async function describeLocalVm(record: VmRecord): Promise<VmListing> {
  // Imported here: definitions are read with users' config files, which must not load execa.
  const { isSameProcess } = await import('../util/process-identity.js');
  const state = record.pid === undefined ? 'created' : (await isSameProcess(record.pid, record.pidStartTime)) ? 'running' : 'stopped';
  return { state, reach: record.ssh ? `${record.ssh.host}:${record.ssh.port}` : '-' };
}

/** The SSH endpoint the VM's record holds: what every process on this host can reach. */
export async function recordedEndpoint(id: string, record: VmRecord): Promise<GuestEndpoint> {
  if (!record.ssh) throw new MacvmError('MACVM_VM_STOPPED', `VM ${id} has no SSH endpoint; is it running? (macvm vm ls)`);
  return record.ssh;
}
