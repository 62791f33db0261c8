import { normalizeMac } from './mac-address.js';

/**
 * macOS's vmnet DHCP server (bootpd) records its leases in /var/db/dhcpd_leases:
 *
 *   {
 *           name=admins-Virtual-Machine
 *           ip_address=192.168.64.3
 *           hw_address=1,e:5a:3:0:1:2
 *           identifier=1,e:5a:3:0:1:2
 *           lease=0x6652f1a3
 *   }
 *
 * `hw_address` is "<ARP hardware type>,<MAC>" (1 = Ethernet) with octets written without
 * leading zeros; `lease` is the expiry as hex seconds since the epoch.
 */
export const DHCPD_LEASES_PATH = '/var/db/dhcpd_leases';

export interface DhcpLease {
  ip: string;
  /** Canonical MAC (see normalizeMac). */
  mac: string;
  name?: string;
  expiresAt: Date;
}

/** All well-formed lease blocks; blocks missing a field or with a non-Ethernet address are skipped. */
export function parseDhcpdLeases(text: string): DhcpLease[] {
  const leases: DhcpLease[] = [];
  let fields: Record<string, string> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '{') {
      fields = {};
    } else if (line === '}') {
      const lease = fields && toLease(fields);
      if (lease) leases.push(lease);
      fields = undefined;
    } else if (fields && line.includes('=')) {
      const at = line.indexOf('=');
      fields[line.slice(0, at)] = line.slice(at + 1);
    }
  }
  return leases;
}

function toLease(fields: Record<string, string>): DhcpLease | undefined {
  const { ip_address: ip, hw_address: hw, lease, name } = fields;
  if (!ip || !hw || !lease || !/^\d{1,3}(\.\d{1,3}){3}$/.test(ip)) return undefined;
  const comma = hw.indexOf(',');
  if (comma < 0 || hw.slice(0, comma) !== '1') return undefined;
  const mac = normalizeMac(hw.slice(comma + 1));
  const seconds = Number.parseInt(lease.replace(/^0x/i, ''), 16);
  if (!mac || !Number.isFinite(seconds)) return undefined;
  return { ip, mac, name, expiresAt: new Date(seconds * 1000) };
}

/**
 * The address leased to `mac`: only unexpired leases count, and when bootpd has handed the
 * same MAC several (a clone rebooted), the one that expires last is the current one.
 */
export function leaseForMac(leases: DhcpLease[], mac: string, now = new Date()): DhcpLease | undefined {
  const wanted = normalizeMac(mac);
  if (!wanted) return undefined;
  return leases
    .filter((lease) => lease.mac === wanted && lease.expiresAt > now)
    .sort((a, b) => b.expiresAt.getTime() - a.expiresAt.getTime())[0];
}
