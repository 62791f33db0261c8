import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chooseClosure, parseAptDepends, resolveDependencyClosure } from '../../src/vm/qemu/image/apt-closure.js';
import { PRUNED } from '../../src/vm/qemu/image/build-linux-browser.js';
import { dynamicLinking } from '../../src/vm/qemu/image/elf.js';
import { checkLibraries } from '../../src/vm/qemu/image/library-check.js';
import { mergeTree, resolveInRoot } from '../../src/vm/qemu/image/merge-tree.js';
import { macvmErrorOf } from '../support/macvm-error.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'macvm-browser-image-unit-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

// The shapes `apt-cache depends --recurse` prints (taken from real bookworm output, trimmed).
const DEPENDS = `chromium
  Depends: libc6
 |Depends: libgtk-3-0
  Depends: libgtk-4-1
  Depends: <xdg-desktop-portal-backend>
    xdg-desktop-portal-gtk
    xdg-desktop-portal-gnome
  PreDepends: <perl:any>
    perl
  Recommends: chromium-sandbox
  Depends: chromium-common
libc6
  Depends: libgcc-s1
libgcc-s1
  Depends: libc6
libgtk-3-0
  Depends: libc6
  Depends: adwaita-icon-theme
libgtk-4-1
  Depends: libc6
  Depends: libgraphene-1.0-0
libgraphene-1.0-0
adwaita-icon-theme
xdg-desktop-portal-gtk
  Depends: libgtk-3-0
xdg-desktop-portal-gnome
  Depends: libgtk-4-1
perl
  Depends: libc6:i386
chromium-common
 |Depends: libgtk-4-1
  Depends: libgtk-3-0
<xdg-desktop-portal-backend>
chromium-sandbox
`;

describe('dependency closure from apt-cache depends', () => {
  it('reads alternatives, virtual names with their providers and Pre-Depends; other kinds and other architectures are dropped', () => {
    const graph = parseAptDepends(DEPENDS);
    const chromium = graph.get('chromium')!;
    expect(chromium.virtual).toBe(false);
    expect(chromium.groups.map((group) => group.map((a) => (a.virtual ? `<${a.name}>[${a.providers.join(',')}]` : a.name)))).toEqual([
      ['libc6'],
      ['libgtk-3-0', 'libgtk-4-1'],
      ['<xdg-desktop-portal-backend>[xdg-desktop-portal-gtk,xdg-desktop-portal-gnome]'],
      ['<perl>[perl]'], // perl:any is perl
      ['chromium-common'], // after a Recommends line, not joined to it
    ]);
    expect(graph.get('perl')!.groups).toEqual([]); // libc6:i386 is not ours
    expect(graph.get('xdg-desktop-portal-backend')!.virtual).toBe(true);
  });

  it('takes one package per dependency as apt does: the first alternative, or one already taken; the first real provider of a virtual name', () => {
    const closure = chooseClosure(parseAptDepends(DEPENDS), ['chromium']);
    expect(closure).toEqual(['chromium', 'libc6', 'libgtk-3-0', 'xdg-desktop-portal-gtk', 'perl', 'chromium-common', 'libgcc-s1', 'adwaita-icon-theme']);
    // chromium-common prefers libgtk-4-1 first, but libgtk-3-0 is already taken: no GTK 4, no GNOME portal.
    expect(closure).not.toContain('libgtk-4-1');
    expect(closure).not.toContain('xdg-desktop-portal-gnome');
    expect(closure).not.toContain('chromium-sandbox'); // only recommended
  });

  it('names the chain that needs a dependency nothing can satisfy, and refuses an unknown root', async () => {
    const graph = parseAptDepends(`app\n  Depends: lib\nlib\n  Depends: <gone>\n<gone>\n`);
    const error = await macvmErrorOf(() => chooseClosure(graph, ['app']));
    expect(error.code).toBe('MACVM_IMAGE_BUILD_FAILED');
    expect(error.message).toContain('No installable package satisfies "<gone>", needed by app → lib');
    expect((await macvmErrorOf(() => chooseClosure(graph, ['gone']))).message).toContain('apt knows no package gone');
  });

  it("on this host's real apt sources, chooses exactly what apt-get would install for chromium-driver on an empty system", async () => {
    const ours = await resolveDependencyClosure(['chromium-driver']);
    // apt's own resolver, simulating an install onto a system with nothing installed.
    const simulated = execFileSync('apt-get', ['install', '-s', '-qq', '--no-install-recommends', '-o', 'Dir::State::status=/dev/null', '-o', 'Debug::NoLocking=1', 'chromium-driver'], { encoding: 'utf8' });
    const apt = [...simulated.matchAll(/^Inst (\S+)/gm)].map((m) => m[1]!);
    expect(apt.length).toBeGreaterThan(5);
    expect([...ours].sort()).toEqual([...apt].sort());
  }, 60_000); // apt loads its caches for seconds on a busy host
});

describe('merging unpacked packages into the root filesystem', () => {
  function tree(root: string, entries: Record<string, string | { link: string } | null>): void {
    for (const [path, value] of Object.entries(entries)) {
      const full = join(root, path);
      mkdirSync(value === null ? full : dirname(full), { recursive: true });
      if (value === null) continue;
      if (typeof value === 'string') writeFileSync(full, value);
      else symlinkSync(value.link, full);
    }
  }

  it("keeps the root's own files, merges directories, follows the root's directory symlinks inside it, and leaves out what is skipped", async () => {
    const root = join(dir, 'root');
    const packages = join(dir, 'packages');
    tree(root, { 'sbin/init': 'busybox init', 'etc/passwd': 'ours', run: null, 'var/run': { link: '../run' }, 'opt/real': null, opt2: { link: '/opt/real' } });
    tree(packages, {
      'sbin/init': 'systemd',
      'etc/passwd': 'theirs',
      'etc/fonts/fonts.conf': '<fontconfig/>',
      'var/run/dbus/pid': '1',
      'opt2/lib.so': 'elf',
      'usr/share/doc/chromium/copyright': 'legal',
      'usr/lib/chromium/chromium': 'elf',
      'usr/lib/chromium/locale': { link: '/usr/share/locale' },
    });
    const result = await mergeTree(packages, root, ['usr/share/doc']);
    expect(readFileSync(join(root, 'sbin/init'), 'utf8')).toBe('busybox init');
    expect(readFileSync(join(root, 'etc/passwd'), 'utf8')).toBe('ours');
    expect(result.kept.sort()).toEqual(['etc/passwd', 'sbin/init']);
    expect(readFileSync(join(root, 'etc/fonts/fonts.conf'), 'utf8')).toBe('<fontconfig/>');
    // var/run is the root's symlink to ../run: the package's file lands in run/, and the link stays.
    expect(readFileSync(join(root, 'run/dbus/pid'), 'utf8')).toBe('1');
    expect(readlinkSync(join(root, 'var/run'))).toBe('../run');
    // An absolute symlink means the guest's /opt/real, never this host's.
    expect(readFileSync(join(root, 'opt/real/lib.so'), 'utf8')).toBe('elf');
    expect(existsSync('/opt/real/lib.so')).toBe(false);
    // Package symlinks are moved as they are, not followed.
    expect(readlinkSync(join(root, 'usr/lib/chromium/locale'))).toBe('/usr/share/locale');
    // usr/ was not in the root, yet the skipped dir under it stays out.
    expect(result.skipped).toEqual(['usr/share/doc']);
    expect(existsSync(join(root, 'usr/share/doc'))).toBe(false);
    expect(existsSync(join(root, 'usr/share'))).toBe(true);
  });

  it('refuses a package directory where the root has a file', async () => {
    const root = join(dir, 'root');
    const packages = join(dir, 'packages');
    tree(root, { 'etc/fonts': 'a file' });
    tree(packages, { 'etc/fonts/fonts.conf': 'x' });
    const error = await macvmErrorOf(mergeTree(packages, root));
    expect(error.code).toBe('MACVM_IMAGE_BUILD_FAILED');
    expect(error.message).toContain('/etc/fonts');
  });

  it('resolves paths as the guest would: absolute links start at the root, .. stops at it, loops are an error', async () => {
    const root = join(dir, 'root');
    tree(root, { 'usr/lib': null, lib: { link: 'usr/lib' }, 'etc/up': { link: '../../../../usr' }, 'a': { link: 'b' }, 'b': { link: '/a' } });
    expect(await resolveInRoot(root, 'lib/x.so')).toBe(join(root, 'usr/lib/x.so'));
    expect(await resolveInRoot(root, 'etc/up/lib')).toBe(join(root, 'usr/lib'));
    expect((await macvmErrorOf(resolveInRoot(root, 'a/x'))).message).toContain('Too many levels of symbolic links');
    expect(lstatSync(join(root, 'lib')).isSymbolicLink()).toBe(true);
  });

  it("prunes the browser guest's documentation and translations, not chromium's own locales", async () => {
    const root = join(dir, 'root');
    const packages = join(dir, 'packages');
    tree(root, { 'usr/bin': null });
    tree(packages, { 'usr/share/doc/libc6/copyright': 'x', 'usr/share/man/man1/chromium.1.gz': 'x', 'usr/share/locale/de/LC_MESSAGES/glib20.mo': 'x', 'usr/share/fonts/dejavu.ttf': 'x', 'usr/lib/chromium/locales/en-US.pak': 'x' });
    await mergeTree(packages, root, PRUNED);
    expect(existsSync(join(root, 'usr/share/doc'))).toBe(false);
    expect(existsSync(join(root, 'usr/share/man'))).toBe(false);
    expect(existsSync(join(root, 'usr/share/locale'))).toBe(false);
    expect(existsSync(join(root, 'usr/share/fonts/dejavu.ttf'))).toBe(true);
    expect(existsSync(join(root, 'usr/lib/chromium/locales/en-US.pak'))).toBe(true);
  });
});

describe('shared-library check of the guest', () => {
  // Real Debian objects from libc6: a gconv module that finds its helper through RUNPATH $ORIGIN.
  const GCONV = '/usr/lib/x86_64-linux-gnu/gconv';
  const LIBC = '/lib/x86_64-linux-gnu';

  it('reads NEEDED and RUNPATH like readelf', () => {
    const file = `${GCONV}/EUC-JP.so`;
    const readelf = execFileSync('readelf', ['-d', file], { encoding: 'utf8' });
    const needed = [...readelf.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
    const runpath = [...readelf.matchAll(/\(RUNPATH\)\s+Library runpath: \[([^\]]+)\]/g)].flatMap((m) => m[1]!.split(':'));
    expect(dynamicLinking(readFileSync(file), file)).toEqual({ needed, runpath });
    expect(runpath).toEqual(['$ORIGIN']);
  });

  it("passes when every library is in the root (found through the object's RUNPATH too) and names the one that is not", async () => {
    const root = join(dir, 'root');
    const place = (from: string, to: string) => {
      mkdirSync(dirname(join(root, to)), { recursive: true });
      copyFileSync(from, join(root, to));
    };
    place(`${GCONV}/EUC-JP.so`, 'usr/lib/x86_64-linux-gnu/gconv/EUC-JP.so');
    place(`${GCONV}/libJIS.so`, 'usr/lib/x86_64-linux-gnu/gconv/libJIS.so');
    place(`${LIBC}/libc.so.6`, 'lib/x86_64-linux-gnu/libc.so.6');
    place(`${LIBC}/ld-linux-x86-64.so.2`, 'lib/x86_64-linux-gnu/ld-linux-x86-64.so.2');
    expect(await checkLibraries(root, ['usr/lib/x86_64-linux-gnu/gconv/EUC-JP.so'])).toBe(4);

    // Out of the RUNPATH dir, libJIS.so is found nowhere.
    mkdirSync(join(root, 'usr/lib/x86_64-linux-gnu/elsewhere'));
    execFileSync('mv', [join(root, 'usr/lib/x86_64-linux-gnu/gconv/libJIS.so'), join(root, 'usr/lib/x86_64-linux-gnu/elsewhere/')]);
    const error = await macvmErrorOf(checkLibraries(root, ['usr/lib/x86_64-linux-gnu/gconv/EUC-JP.so']));
    expect(error.code).toBe('MACVM_IMAGE_BUILD_FAILED');
    expect(error.message).toContain('libJIS.so (needed by /usr/lib/x86_64-linux-gnu/gconv/EUC-JP.so)');
    expect((await macvmErrorOf(checkLibraries(root, ['usr/bin/chromedriver']))).message).toContain('/usr/bin/chromedriver is not in');
  });
});
