/**
 * Visual snapshots of the VM's own display. The guest writes known text on its console,
 * the host captures the display (QMP screendump) until two captures agree, and the PNG
 * is compared with the baseline in __image_snapshots__/ (written on first run; update
 * with `macvm test -u`).
 */
import { expect, it, withMacVM } from 'macvm';

withMacVM('the guest console', { image: 'linux-test', cpus: 1, memory: '256MiB', display: true }, (vm) => {
  it('shows what the guest printed', async () => {
    // Clear the screen, hide the cursor, print a fixed banner on the first VGA console.
    await vm.sh`printf '\033c\033[?25l%s\n%s\n' ${'macvm: visual snapshot'} ${'every suite gets a fresh clone'} > /dev/tty1`;
    const image = await vm.screenshot({ stable: true, timeoutMs: 10_000 });
    await expect(image).toMatchImageSnapshot({ name: 'console-banner' });
  });
});
