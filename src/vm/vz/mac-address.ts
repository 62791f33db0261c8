import { randomBytes } from 'node:crypto';

/**
 * MAC addresses in one canonical form: lower-case, two hex digits per octet, colons.
 * macOS writes them without leading zeros in /var/db/dhcpd_leases and `arp -an`
 * (`e:5a:3:0:1:2`), Tart and VZMACAddress with them (`0e:5a:03:00:01:02`).
 */
export function normalizeMac(text: string): string | undefined {
  const parts = text.trim().split(/[:-]/);
  if (parts.length !== 6) return undefined;
  const octets: string[] = [];
  for (const part of parts) {
    if (!/^[0-9a-fA-F]{1,2}$/.test(part)) return undefined;
    octets.push(part.toLowerCase().padStart(2, '0'));
  }
  return octets.join(':');
}

/**
 * A fresh MAC for a clone: locally administered (bit 1 of the first octet set) and unicast
 * (bit 0 clear), as VZMACAddress.randomLocallyAdministeredAddress makes them. Two clones of
 * one image must never share a MAC, or they fight over one DHCP lease.
 */
export function randomLocallyAdministeredMac(random: (n: number) => Buffer = randomBytes): string {
  const bytes = random(6);
  bytes[0] = (bytes[0]! & 0b1111_1100) | 0b0000_0010;
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(':');
}
