import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { guestNode } from '../../src/bench/node-runtime.js';
import { imageWithNode } from '../../src/fixtures/node-layer.js';
import { homePaths } from '../../src/vm/home.js';
import { startMacVM } from '../../src/machine/start.js';

// A REAL qemu linux-test guest cloned from the cached disk layer that holds this host's node:
// the bench finds node there and uploads nothing. Build the image first: `macvm image build linux-test`.
const haveImage = existsSync(join(homePaths().image('linux-test'), 'image.json'));

describe.skipIf(!haveImage)('bench node from a disk layer', () => {
  test('a clone of the layer runs this host\'s node without an upload', async () => {
    const layer = await imageWithNode('qemu', 'linux-test');
    expect(layer).not.toBe('linux-test');
    expect(await imageWithNode('qemu', 'linux-test')).toBe(layer); // made once, then found
    const vm = await startMacVM({ image: layer, provider: 'qemu', cpus: 1, memory: 512 });
    try {
      const uploads: string[] = [];
      const shell = { exec: vm.exec.bind(vm), writeFile: vm.writeFile.bind(vm), upload: async (from: string, to: string) => { uploads.push(to); await vm.upload(from, to); } };
      const node = await guestNode(shell);
      expect(node.how).toBe('layer-node');
      expect(uploads).toEqual([]);
      const { stdout } = await vm.exec(`${node.command} -p process.version`);
      expect(stdout.trim()).toBe(process.version);
    } finally {
      await vm.dispose();
    }
  }, 600_000);

  test('a provider that cannot make layers clones the image itself (node is uploaded)', async () => {
    expect(await imageWithNode('ssh', 'lab-mac')).toBe('lab-mac');
  });
});
