import { AUTHORIZED_KEY_PARAMETER } from '../authorized-key.js';

/**
 * The text files of the linux-test guest: the initrd's /init and the root filesystem's
 * boot scripts and account files. Pure functions, so they are read and tested as text.
 */

/** Printed on the serial console once dropbear listens on port 22; the rest is `uptime=<secs>`. */
export const READY_MARKER = 'MACVM-READY sshd-listening';

/** Printed when the kernel command line carries a client key the guest cannot read. */
export const AUTHORIZED_KEY_REFUSED_MARKER = 'MACVM-AUTHORIZED-KEY-REFUSED';

/** Printed when the initrd cannot bring up the root disk; the guest then powers off at once. */
export const INITRD_FAILED_MARKER = 'MACVM-INITRD-FAILED';

export const GUEST_HOSTNAME = 'macvm-linux-test';
export const GUEST_IP = '10.0.2.15/24';
export const GUEST_GATEWAY = '10.0.2.2';
/** QEMU user-mode networking's built-in DNS forwarder. */
export const GUEST_DNS = '10.0.2.3';
export const HOST_KEY_PATH = '/etc/dropbear/dropbear_ed25519_host_key';

/** The busybox applets the initrd's /init uses; each becomes a symlink in the initrd's /bin. */
export const INITRD_APPLETS = ['sh', 'mount', 'umount', 'insmod', 'mkdir', 'cat', 'echo', 'usleep', 'switch_root', 'poweroff', 'sync'];

/**
 * The initrd's /init. The cloud kernel has ext4 built in but its virtio drivers are
 * modules: load them (dependencies first), wait for the root disk, mount it and
 * switch_root to its init. (virtio_mmio finds microvm's devices through ACPI; this
 * kernel has no `virtio_mmio.device=` parameter.) On failure it says why and powers off,
 * so a broken image fails fast instead of hanging until a deadline.
 */
export function initrdInit(modules: string[]): string {
  const loads = modules.map((m) => `insmod /lib/modules/${m}.ko || fail "insmod ${m}"`).join('\n');
  return `#!/bin/sh
# macvm linux-test initrd
fail() {
  echo "${INITRD_FAILED_MARKER}: $*" > /dev/console
  sync
  poweroff -f
}
mkdir -p /proc /sys /dev /newroot
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
root=/dev/vda
rootfstype=ext4
rootflags=rw
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    root=*) root="\${arg#root=}" ;;
    rootfstype=*) rootfstype="\${arg#rootfstype=}" ;;
    ro) rootflags=ro ;;
  esac
done
${loads}
tries=0
while [ ! -b "$root" ]; do
  tries=$((tries + 1))
  [ "$tries" -gt 1000 ] && fail "root disk $root did not appear within 10 s"
  usleep 10000
done
mount -t "$rootfstype" -o "$rootflags" "$root" /newroot || fail "cannot mount $root"
[ -x /newroot/sbin/init ] || fail "no /sbin/init on $root"
mount --move /dev /newroot/dev
umount /sys
umount /proc
exec switch_root /newroot /sbin/init
`;
}

/** busybox init's table: boot script, dropbear kept running, the ready marker, clean shutdown. */
export function inittab(): string {
  return `# macvm linux-test: busybox init
::sysinit:/etc/init.d/rcS
::respawn:/usr/sbin/dropbear -F -s -p 22 -r ${HOST_KEY_PATH}
::once:/etc/init.d/announce-ready
::ctrlaltdel:/sbin/poweroff
::shutdown:/etc/init.d/rcK
`;
}

/**
 * Boot script. Keeps the VGA console (tty1) blank and quiet: tests write known text there
 * and compare screendumps, so nothing else may draw on it.
 */
export function rcS(): string {
  return `#!/bin/sh
# macvm linux-test: mounts, network, power button
mount -t proc proc /proc
mount -t sysfs sysfs /sys
# The initrd moved its devtmpfs here; mount one only when booted without it.
grep -q '^devtmpfs /dev ' /proc/mounts || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/dropbear /var/log
hostname -F /etc/hostname
ip link set lo up
ip addr add ${GUEST_IP} dev eth0
ip link set eth0 up
ip route add default via ${GUEST_GATEWAY}
syslogd -O /var/log/messages
acpid
${authorizedKeyFromCmdline()}
printf '\\033[H\\033[2J' > /dev/tty1 2>/dev/null
exit 0
`;
}

/**
 * Part of rcS (it runs before init starts dropbear): root's authorized key comes from the
 * kernel command line, \`${AUTHORIZED_KEY_PARAMETER}=<base64url of "ssh-ed25519 AAAA…">\`, and
 * replaces the whole authorized_keys, so only the host that booted this clone logs in
 * (authorized-key.ts says why). The last occurrence wins: the provider appends its own after
 * the image's command line. A value that does not decode to one public key line leaves no key
 * at all — fail closed — and says so on the serial console. Without the parameter (a boot by
 * hand) the key baked in at build time stays.
 */
export function authorizedKeyFromCmdline(paths: { cmdline: string; authorizedKeys: string; console: string } = GUEST_KEY_PATHS): string {
  const { cmdline, authorizedKeys, console } = paths;
  return `key64=
set -f
for arg in $(cat ${cmdline}); do
  case "$arg" in
    ${AUTHORIZED_KEY_PARAMETER}=*) key64="\${arg#${AUTHORIZED_KEY_PARAMETER}=}" ;;
  esac
done
set +f
if [ -n "$key64" ]; then
  key64=$(printf '%s\\n' "$key64" | tr -- '-_' '+/')
  while [ $(( \${#key64} % 4 )) -ne 0 ]; do key64="$key64="; done
  key=$(printf '%s\\n' "$key64" | base64 -d 2>/dev/null)
  umask 077
  mkdir -p ${authorizedKeys.slice(0, authorizedKeys.lastIndexOf('/')) || '/'}
  if [ "$(printf '%s\\n' "$key" | wc -l)" -eq 1 ] && printf '%s\\n' "$key" | grep -qxE '[a-z0-9@.-]+ [A-Za-z0-9+/]+={0,2}'; then
    printf '%s\\n' "$key" > ${authorizedKeys}.new
  else
    : > ${authorizedKeys}.new
    echo "${AUTHORIZED_KEY_REFUSED_MARKER}: ${AUTHORIZED_KEY_PARAMETER} is not one public key line; no key can log in" > ${console}
  fi
  mv -f ${authorizedKeys}.new ${authorizedKeys}
  umask 022
fi`;
}

/** Where the guest reads its command line and keeps root's authorized keys. */
export const GUEST_KEY_PATHS = { cmdline: '/proc/cmdline', authorizedKeys: '/root/.ssh/authorized_keys', console: '/dev/console' } as const;

/** The version line the warm-up connection sends: a valid one, so dropbear's log says "Exited normally". */
export const WARM_UP_IDENT = 'SSH-2.0-macvm-warm-up';

/**
 * Waits (briefly, polling /proc/net) until dropbear listens on port 22, warms it with one
 * local connection, then prints the marker.
 *
 * Why the warm-up: dropbear re-executes itself for every connection (`dropbear ... -2 <fd>`),
 * and the first one in a fresh guest runs that path cold — code never executed yet, so
 * under TCG never translated, pages never touched. Measured on the host as the vCPU's own
 * CPU time (steal excluded) with the host at load 4–7, the first login cost 330–430 ms of
 * guest CPU against 170–300 ms for the ones after it (CPU, not waiting: no entropy or key
 * file stall); a connection that only trades version lines — fork, re-exec, host key load —
 * cost 110–175 ms and left the next login no dearer than later ones, and one that also ran
 * the key exchange saved no more. So nc sends a version line and closes its side; dropbear's
 * child reads EOF and exits ("Exited normally" in its log). It moves that cost before the
 * marker rather than removing it, and `timeout` bounds it. At load 1–3 the first login was
 * no dearer to begin with (233 against 252 ms), so there it changes nothing measurable.
 */
export function announceReady(): string {
  return `#!/bin/sh
# macvm linux-test: tell the host (serial console) the moment sshd listens
listening() {
  # local address :0016 (port 22) in state 0A (LISTEN)
  grep -q '^ *[0-9]*: [0-9A-F]*:0016 [0-9A-F]*:[0-9A-F]* 0A ' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
tries=0
until listening; do
  tries=$((tries + 1))
  [ "$tries" -gt 3000 ] && { echo "MACVM-NOT-READY sshd did not listen within 60 s" > /dev/console; exit 1; }
  usleep 20000
done
# One local connection first, so the host's first login is not dropbear's first (see guest-files.ts).
printf '${WARM_UP_IDENT}\\r\\n' | timeout 5 nc 127.0.0.1 22 >/dev/null 2>&1
read uptime idle < /proc/uptime
echo "${READY_MARKER} uptime=$uptime" > /dev/console
`;
}

/** Shutdown: stop daemons, flush, and leave the root filesystem clean for the next boot. */
export function rcK(): string {
  return `#!/bin/sh
# macvm linux-test: clean shutdown
killall dropbear acpid syslogd 2>/dev/null
sync
umount -a -r 2>/dev/null
mount -o remount,ro / 2>/dev/null
exit 0
`;
}

/** Where the quick power-off script lives in the guest. */
export const QUICK_POWEROFF_PATH = '/usr/libexec/macvm-poweroff';

/**
 * Run by busybox acpid for the ACPI power button (QMP system_powerdown). busybox init's
 * own poweroff path sleeps between SIGTERM and SIGKILL (~2.5 s under TCG); nothing here
 * needs that grace, so stop the daemons, leave the root filesystem clean (read-only) and
 * power off at once. (A `poweroff` typed in the guest still takes init's path: busybox
 * ash runs its own applets before anything on PATH.)
 */
export function quickPoweroff(): string {
  return `#!/bin/sh
# macvm linux-test: quick clean power-off
killall dropbear syslogd acpid 2>/dev/null
sync
mount -o remount,ro / 2>/dev/null
sync
exec /bin/busybox poweroff -f
`;
}

export function powerButtonAction(): string {
  return `#!/bin/sh
exec ${QUICK_POWEROFF_PATH}
`;
}

export function accountFiles(): Record<string, { text: string; mode: number }> {
  return {
    'etc/passwd': { text: 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n', mode: 0o644 },
    'etc/group': { text: 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n', mode: 0o644 },
    // '*': no password can match, yet the account is not locked ('!'), which dropbear
    // would refuse even for public-key logins.
    'etc/shadow': { text: 'root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n', mode: 0o600 },
    'etc/shells': { text: '/bin/sh\n/bin/ash\n', mode: 0o644 },
    'etc/nsswitch.conf': { text: 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n', mode: 0o644 },
    'etc/hostname': { text: `${GUEST_HOSTNAME}\n`, mode: 0o644 },
    'etc/hosts': { text: `127.0.0.1 localhost\n127.0.1.1 ${GUEST_HOSTNAME}\n::1 localhost\n`, mode: 0o644 },
    'etc/resolv.conf': { text: `nameserver ${GUEST_DNS}\n`, mode: 0o644 },
    'etc/profile': { text: 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nexport PS1="\\h:\\w# "\n', mode: 0o644 },
  };
}

/**
 * The kernel command line (without console=, which the provider adds). `quiet` keeps the
 * console short; `vt.global_cursor_default=0` hides the blinking VGA cursor so screendumps
 * are deterministic; `tsc_early_khz` skips TSC calibration, which can stall on a busy host.
 */
export function kernelAppend(tscKhz?: number): string {
  const parts = ['root=/dev/vda', 'rootfstype=ext4', 'rw', 'quiet', 'panic=-1', 'vt.global_cursor_default=0'];
  if (tscKhz && tscKhz > 0) parts.push(`tsc_early_khz=${Math.round(tscKhz)}`);
  return parts.join(' ');
}
