/**
 * The everyday shape of a macvm spec: one suite, one fresh VM, torn down at the end.
 * On Linux hosts the default provider is qemu and `linux-test` is a tiny Debian-built
 * guest; on an Apple Silicon Mac the same spec runs against a macOS image.
 */
import { createServer } from 'node:http';
import { expect, it, withMacVM } from 'macvm';

withMacVM('a fresh Linux guest', { image: 'linux-test', cpus: 1, memory: '256MiB' }, (vm) => {
  it('runs commands over SSH', async () => {
    const { stdout } = await vm.sh`uname -s`;
    expect(stdout).toBe('Linux');
  });

  it('quotes what you interpolate', async () => {
    const tricky = "O'Brien; rm -rf / $(echo nope)";
    const { stdout } = await vm.sh`printf %s ${tricky}`;
    expect(stdout).toBe(tricky);
  });

  it('starts from a clean clone: nothing from earlier runs is there', async () => {
    const marker = '/root/written-by-a-spec';
    expect((await vm.exec(`test -e ${marker}`, { reject: false })).exitCode).toBe(1);
    await vm.writeFile(marker, 'this clone only\n');
    expect((await vm.readFile(marker)).toString()).toBe('this clone only\n');
  });

  it('keeps what it wrote across a reboot (vm.restart())', async () => {
    await vm.writeFile('/root/survives-a-reboot', 'still here\n');
    const bootId = (await vm.sh`cat /proc/sys/kernel/random/boot_id`).stdout;
    await vm.restart();
    expect((await vm.sh`cat /proc/sys/kernel/random/boot_id`).stdout).not.toBe(bootId);
    expect((await vm.readFile('/root/survives-a-reboot')).toString()).toBe('still here\n');
  });

  it('reaches a dev server on the host through exposeHostPort', async () => {
    const server = createServer((_req, res) => res.end('hello from the host'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = await vm.exposeHostPort((server.address() as { port: number }).port);
      const { stdout } = await vm.sh`wget -qO- http://127.0.0.1:${port}/`;
      expect(stdout).toBe('hello from the host');
    } finally {
      server.close();
    }
  });
});
