import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { arpEntryForMac, parseArpOutput } from '../../src/vm/vz/arp.js';
import { leaseForMac, parseDhcpdLeases } from '../../src/vm/vz/dhcpd-leases.js';
import { normalizeMac, randomLocallyAdministeredMac } from '../../src/vm/vz/mac-address.js';

const fixtures = join(import.meta.dirname, '..', 'fixtures', 'tart');
const leasesText = readFileSync(join(fixtures, 'dhcpd_leases'), 'utf8');
const arpText = readFileSync(join(fixtures, 'arp-an.txt'), 'utf8');
const now = new Date('2026-01-01T00:00:00Z');

describe('MAC addresses', () => {
  it('normalises the leading-zero-less form macOS writes', () => {
    expect(normalizeMac('e:5a:3:0:1:2')).toBe('0e:5a:03:00:01:02');
    expect(normalizeMac('0E:5A:03:00:01:02')).toBe('0e:5a:03:00:01:02');
    expect(normalizeMac('(incomplete)')).toBeUndefined();
    expect(normalizeMac('e:5a:3:0:1')).toBeUndefined();
    expect(normalizeMac('e:5a:3:0:1:zz')).toBeUndefined();
  });

  it('makes locally administered unicast MACs, whatever the random bytes', () => {
    for (const fill of [0x00, 0xff, 0x01, 0xfe]) {
      const mac = randomLocallyAdministeredMac((n) => Buffer.alloc(n, fill));
      const first = Number.parseInt(mac.slice(0, 2), 16);
      expect(first & 0b10).toBe(0b10); // locally administered
      expect(first & 0b01).toBe(0); // unicast
      expect(normalizeMac(mac)).toBe(mac);
    }
    expect(randomLocallyAdministeredMac()).not.toBe(randomLocallyAdministeredMac());
  });
});

describe('/var/db/dhcpd_leases', () => {
  const leases = parseDhcpdLeases(leasesText);

  it('reads every block with its fields', () => {
    expect(leases.map((l) => l.ip)).toEqual(['192.168.64.2', '192.168.64.3', '192.168.64.4', '192.168.64.5']);
    expect(leases[2]).toMatchObject({ name: 'ubuntu', mac: '2e:7a:91:44:0b:1c' });
    expect(leases[0]!.expiresAt.toISOString()).toBe(new Date(0x5f5e0ff * 1000).toISOString());
  });

  it('finds the current lease by MAC in either spelling, skipping expired ones', () => {
    expect(leaseForMac(leases, '0e:5a:03:00:01:02', now)?.ip).toBe('192.168.64.3');
    expect(leaseForMac(leases, 'e:5a:3:0:1:2', now)?.ip).toBe('192.168.64.3');
    expect(leaseForMac(leases, 'A2:CF:13:07:E1:03', now)?.ip).toBe('192.168.64.5');
    expect(leaseForMac(leases, '0e:5a:03:00:01:02', new Date(0x7ffffff5 * 1000))).toBeUndefined();
    expect(leaseForMac(leases, '02:00:00:00:00:01', now)).toBeUndefined();
  });

  it('prefers the lease that expires last when one MAC has several', () => {
    const text = `{\n\tip_address=192.168.64.20\n\thw_address=1,2:0:0:0:0:1\n\tlease=0x7ffffff0\n}\n{\n\tip_address=192.168.64.21\n\thw_address=1,2:0:0:0:0:1\n\tlease=0x7ffffff8\n}\n`;
    expect(leaseForMac(parseDhcpdLeases(text), '02:00:00:00:00:01', now)?.ip).toBe('192.168.64.21');
  });

  it('ignores non-Ethernet hardware types and truncated blocks', () => {
    const text = `{\n\tip_address=192.168.64.30\n\thw_address=ff,2:0:0:0:0:2\n\tlease=0x7fffffff\n}\n{\n\tip_address=192.168.64.31\n\thw_address=1,2:0:0:0:0:2\n`;
    expect(parseDhcpdLeases(text)).toEqual([]);
  });
});

describe('arp -an', () => {
  const entries = parseArpOutput(arpText);

  it('reads address, MAC and interface, skipping incomplete entries', () => {
    expect(entries.map((e) => e.ip)).toEqual(['192.168.1.1', '192.168.64.3', '192.168.64.8', '224.0.0.251']);
    expect(entries[1]).toEqual({ ip: '192.168.64.3', mac: '0e:5a:03:00:01:02', interface: 'bridge100' });
  });

  it('finds an entry by MAC', () => {
    expect(arpEntryForMac(entries, '0e:5a:03:00:01:02')?.ip).toBe('192.168.64.3');
    expect(arpEntryForMac(entries, 'a2:cf:13:07:e1:03')?.ip).toBe('192.168.64.8');
    expect(arpEntryForMac(entries, '02:00:00:00:00:09')).toBeUndefined();
  });
});
