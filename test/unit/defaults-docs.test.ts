import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../src/vm/defaults.js';
import { defaultSlots } from '../../src/vm/registry.js';

const README = readFileSync(join(import.meta.dirname, '../../README.md'), 'utf8');

/** The README's defaults table: `| \`key\` | value |` rows. */
function documented(): Map<string, string> {
  return new Map([...README.matchAll(/^\| `([\w.]+)` \| ([^|]+) \|$/gm)].map((m) => [m[1]!, m[2]!.trim()]));
}

describe("the README's defaults are the defaults module's", () => {
  it.each([
    ['defaults.cpus', `${DEFAULTS.cpus}`],
    ['defaults.memory', `${DEFAULTS.memoryMiB} MiB`],
    ['timeouts.ready', `${DEFAULTS.readyTimeoutMs} ms`],
    ['timeouts.stop', `${DEFAULTS.stopGracefulMs} ms`],
    ['timeouts.slot', `${DEFAULTS.slotTimeoutMs} ms`],
    ['snapshots.threshold', `${DEFAULTS.snapshotThreshold}`],
  ])('%s', (key, value) => {
    expect(documented().get(key)).toBe(value);
  });

  it('slots: the fixed per-provider numbers, and qemu by the host', () => {
    const text = documented().get('slots') ?? '';
    const slots = defaultSlots({ platform: 'linux', arch: 'x64', cpus: 64, totalMemoryBytes: 8 * 2 ** 30 });
    for (const provider of ['vz', 'tart', 'ssh', 'orchard'] as const) expect(text).toContain(`${provider}: ${slots[provider]}`);
    // "one per CPU thread and per 2 GiB of host RAM": 64 threads but 8 GiB gives 4.
    expect(slots.qemu).toBe(4);
    expect(defaultSlots({ platform: 'linux', arch: 'x64', cpus: 1, totalMemoryBytes: 2 ** 30 }).qemu).toBe(1);
  });
});
