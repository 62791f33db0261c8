import { readFile } from 'node:fs/promises';
import { execa } from 'execa';
import { MacvmError } from '../../errors.js';
import type { Deadline } from '../../shared/deadline.js';
import { arpEntryForMac, parseArpOutput } from './arp.js';
import { DHCPD_LEASES_PATH, leaseForMac, parseDhcpdLeases } from './dhcpd-leases.js';

export interface AddressLookup {
  /** Default /var/db/dhcpd_leases. */
  leasesPath?: string;
  /** argv of the ARP dump; default ["arp", "-an"]. */
  arpCommand?: string[];
  /** Poll interval. */
  intervalMs?: number;
}

/**
 * The guest's IPv4 address behind VZNATNetworkDeviceAttachment: the vmnet DHCP server's lease
 * for its MAC, or — when the lease file lags or is unreadable — the host's ARP table. Polled
 * until found, the VM stops (`stopped` resolves), or the deadline passes.
 */
export async function findGuestAddress(mac: string, deadline: Deadline, stopped: Promise<unknown>, lookup: AddressLookup = {}): Promise<string> {
  let gone = false;
  void stopped.then(() => (gone = true));
  const interval = lookup.intervalMs ?? 500;
  for (;;) {
    const ip = (await fromLeases(mac, lookup.leasesPath ?? DHCPD_LEASES_PATH)) ?? (await fromArp(mac, lookup.arpCommand ?? ['arp', '-an']));
    if (ip) return ip;
    if (gone) throw new MacvmError('MACVM_VM_STOPPED', `The VM (MAC ${mac}) stopped before it got a network address.`);
    deadline.throwIfExpired();
    await deadline.sleep(interval);
  }
}

async function fromLeases(mac: string, path: string): Promise<string | undefined> {
  try {
    return leaseForMac(parseDhcpdLeases(await readFile(path, 'utf8')), mac)?.ip;
  } catch {
    return undefined; // not there until vmnet's first lease
  }
}

async function fromArp(mac: string, argv: string[]): Promise<string | undefined> {
  const [command, ...args] = argv;
  const result = await execa(command!, args, { reject: false, timeout: 5_000 });
  return result.exitCode === 0 ? arpEntryForMac(parseArpOutput(result.stdout), mac)?.ip : undefined;
}
