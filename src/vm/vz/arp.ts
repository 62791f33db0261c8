import { normalizeMac } from './mac-address.js';

/**
 * `arp -an` on macOS prints one line per entry:
 *
 *   ? (192.168.64.3) at e:5a:3:0:1:2 on bridge100 ifscope [bridge]
 *   ? (192.168.64.9) at (incomplete) on bridge100 ifscope [bridge]
 *   ? (224.0.0.251) at 1:0:5e:0:0:fb on en0 ifscope permanent [ethernet]
 *
 * MAC octets come without leading zeros, like in dhcpd_leases.
 */
export interface ArpEntry {
  ip: string;
  mac: string;
  interface: string;
}

const LINE = /^\S+ \((\d{1,3}(?:\.\d{1,3}){3})\) at (\S+) on (\S+)/;

export function parseArpOutput(text: string): ArpEntry[] {
  const entries: ArpEntry[] = [];
  for (const line of text.split('\n')) {
    const match = LINE.exec(line.trim());
    if (!match) continue;
    const mac = normalizeMac(match[2]!);
    if (!mac) continue; // "(incomplete)"
    entries.push({ ip: match[1]!, mac, interface: match[3]! });
  }
  return entries;
}

export function arpEntryForMac(entries: ArpEntry[], mac: string): ArpEntry | undefined {
  const wanted = normalizeMac(mac);
  return wanted ? entries.find((entry) => entry.mac === wanted) : undefined;
}
