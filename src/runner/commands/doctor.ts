import { access, readFile } from 'node:fs/promises';
import { arch, cpus, platform, totalmem } from 'node:os';
import { execa } from 'execa';
import { MacvmError } from '../../errors.js';
import { homePaths } from '../../vm/home.js';
import { chooseAccelerator } from '../../vm/qemu/accel.js';
import { qemuBinary } from '../../vm/qemu/args.js';
import { resolveQemuSettings } from '../../vm/qemu/settings.js';
import { buildLinuxBrowserImage } from '../../vm/qemu/image/build-linux-browser.js';
import { buildLinuxTestImage, missingHostTools } from '../../vm/qemu/image/build-linux-test.js';
import { defaultProviderName } from '../../vm/providers.js';
import { findTool, HOST_REQUIREMENTS, missingRequirements, requirementsFor } from '../../vm/host-requirements.js';
import { findConfigFile, loadConfig } from '../config.js';
import type { Command } from './command.js';
import { parseCommandArgs, writeJson } from './args.js';
import { progressPrinter } from './progress-printer.js';

interface Check {
  area: string;
  ok: boolean;
  detail: string;
  /** Debian packages that fix it. */
  apt?: string[];
  /** How to fix it by hand, when apt is not the answer. */
  fix?: string;
  /** A provider this host cannot run at all (vz on Linux): reported, never a failure. */
  notForThisHost?: boolean;
}

/** The Debian package that brings `bin`, from the one host list. */
function aptFor(bin: string): string[] {
  const requirement = HOST_REQUIREMENTS.find((r) => r.bin === bin);
  return requirement ? [requirement.apt] : [];
}

export const doctorCommand: Command = {
  path: ['doctor'],
  summary: 'Check the host',
  help: `Usage: macvm doctor [--fix] [--with-test-tools] [--quiet] [--json]

Says which providers work on this host, which accelerator qemu would use, and what is
missing, with the command that fixes it.

  --fix               install what is missing (Debian/Ubuntu: apt-get, as root or with
                      passwordless sudo) and build the linux-test guest if it is not built yet
  --with-test-tools   also check (and with --fix install or build) what macvm's own tests
                      run on this host (sshd, chromium, chromedriver, cpio, busybox, …) and
                      the linux-browser guest
  --quiet             print only problems
  --json              machine-readable result

What is checked and installed is one list, src/vm/host-requirements.ts: each program with
its Debian package, for running qemu guests, building the linux-test/linux-browser guests,
and macvm's own tests. \`npm run check:native\` (compiling the macOS addon) needs clang
and a macOS SDK besides; doctor does not install those.`,
  async run({ argv, stdout, stderr }) {
    const { values } = parseCommandArgs(
      'doctor',
      argv,
      { fix: { type: 'boolean' }, 'with-test-tools': { type: 'boolean' }, quiet: { type: 'boolean' }, json: { type: 'boolean' } },
      false,
    );
    let checks = await runChecks(values['with-test-tools'] ?? false);
    if (values.fix) {
      const apt = [...new Set(checks.filter((c) => !c.ok).flatMap((c) => c.apt ?? []))];
      if (apt.length > 0) await aptInstall(apt, values.json ? undefined : stderr);
      if (!(await imageBuilt('linux-test')) && (await qemuInstalled())) {
        const progress = progressPrinter(stderr, { quiet: values.json });
        if (!values.json) stderr.write('Building the linux-test guest (first use)…\n');
        await buildLinuxTestImage({ imageDir: homePaths().image('linux-test'), onProgress: progress.update });
        progress.done();
      }
      // The browser-in-a-VM tests' guest: built here so a test run does not start with a build.
      if (values['with-test-tools'] && !(await imageBuilt('linux-browser')) && (await qemuInstalled())) {
        const progress = progressPrinter(stderr, { quiet: values.json });
        if (!values.json) stderr.write('Building the linux-browser guest (first use, ~230 MiB of Debian packages)…\n');
        await buildLinuxBrowserImage({ imageDir: homePaths().image('linux-browser'), onProgress: progress.update });
        progress.done();
      }
      checks = await runChecks(values['with-test-tools'] ?? false, true);
    }
    // One verdict for the exit code and --json's `ok`: what fails and could work on this host.
    const problems = checks.filter((c) => !c.ok && !c.notForThisHost);
    // What --fix can mend here; vz and tart on a Linux host are facts, not problems.
    const fixable = problems.filter((p) => p.apt?.length || p.area === 'image' || p.area === 'browser image' || p.area.startsWith('vz '));
    if (values.json) {
      writeJson(stdout, { ok: problems.length === 0, defaultProvider: defaultProviderName(), checks });
    } else {
      for (const check of checks) {
        if (values.quiet && check.ok) continue;
        stdout.write(`${check.ok ? '✓' : '✗'} ${check.area.padEnd(14)} ${check.detail}\n`);
        if (!check.ok) {
          const fix = check.apt?.length ? `apt-get install -y --no-install-recommends ${check.apt.join(' ')}` : check.fix;
          if (fix) stdout.write(`  ${''.padEnd(14)} fix: ${fix}\n`);
        }
      }
      if (fixable.length > 0 && !values.fix) stdout.write('\n`macvm doctor --fix` installs the missing Debian packages and builds the test guest.\n');
    }
    // Problems in providers this host cannot run anyway (vz on Linux) are not failures.
    return problems.length > 0 ? 1 : 0;
  },
};

async function runChecks(withTestTools: boolean, fix = false): Promise<Check[]> {
  const checks: Check[] = [await configCheck()];
  checks.push({ area: 'host', ok: true, detail: `${platform()} ${arch()}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB; default provider: ${defaultProviderName()}` });

  const settings = await qemuSettings();
  const binary = qemuBinary('x86_64', settings.binary);
  const qemu = await versionOf(binary, ['--version']);
  checks.push(qemu ? { area: 'qemu', ok: true, detail: qemu } : { area: 'qemu', ok: false, detail: `${binary} not found`, apt: aptFor('qemu-system-x86_64') });
  if (qemu) checks.push(await acceleratorCheck(binary, settings.accelerator));
  const qemuImg = await versionOf('qemu-img', ['--version']);
  checks.push(qemuImg ? { area: 'qemu-img', ok: true, detail: qemuImg } : { area: 'qemu-img', ok: false, detail: 'qemu-img not found', apt: aptFor('qemu-img') });

  const buildTools = await missingHostTools();
  checks.push(
    buildTools.tools.length === 0
      ? { area: 'image tools', ok: true, detail: 'everything needed to build linux-test and linux-browser is installed' }
      : { area: 'image tools', ok: false, detail: `missing: ${buildTools.tools.join(', ')}`, apt: buildTools.aptPackages },
  );
  const built = await imageBuilt('linux-test');
  checks.push(built ? { area: 'image', ok: true, detail: `linux-test built (${homePaths().image('linux-test')})` } : { area: 'image', ok: false, detail: 'linux-test is not built', fix: 'macvm image build linux-test' });

  if (withTestTools) {
    const testTools = requirementsFor('tests');
    const missing = await missingRequirements(testTools);
    checks.push(
      missing.tools.length === 0
        ? { area: 'test tools', ok: true, detail: `all ${testTools.length} programs macvm's own tests run on this host are installed` }
        : { area: 'test tools', ok: false, detail: `missing: ${missing.tools.join(', ')}`, apt: missing.aptPackages },
    );
    checks.push(
      (await imageBuilt('linux-browser'))
        ? { area: 'browser image', ok: true, detail: `linux-browser built (${homePaths().image('linux-browser')})` }
        : { area: 'browser image', ok: false, detail: 'linux-browser is not built (the browser-in-a-VM tests use it)', fix: 'macvm image build linux-browser' },
    );
  }

  checks.push(...(await vzChecks(fix)));
  const tart = await versionOf('tart', ['--version']);
  checks.push(
    tart
      ? { area: 'tart', ok: true, detail: `tart ${tart}` }
      : { area: 'tart', ok: false, detail: 'tart not installed (macOS only: brew install cirruslabs/cli/tart)', notForThisHost: platform() !== 'darwin' },
  );
  checks.push({ area: 'ssh', ok: true, detail: 'works with any reachable machine: set `ssh` in macvm.config.ts' });
  checks.push(await orchardCheck());
  return checks;
}

/** A macvm.config.ts that does not load fails every run: doctor says so first. */
async function configCheck(): Promise<Check> {
  const file = await findConfigFile(process.cwd()).catch(() => undefined);
  if (!file) return { area: 'config', ok: true, detail: 'no macvm.config.ts here: defaults apply' };
  try {
    await loadConfig();
    return { area: 'config', ok: true, detail: `${file} is valid` };
  } catch (error) {
    return { area: 'config', ok: false, detail: (error as Error).message.split('\n').slice(0, 4).join(' '), fix: `edit ${file}` };
  }
}

/** The config's `qemu` section under MACVM_ACCEL / MACVM_QEMU_BINARY; a broken config is reported by its own check. */
async function qemuSettings(): Promise<ReturnType<typeof resolveQemuSettings>> {
  let configured: Record<string, unknown> | undefined;
  try {
    if (await findConfigFile(process.cwd())) configured = (await loadConfig()).qemu as Record<string, unknown> | undefined;
  } catch {
    configured = undefined;
  }
  return resolveQemuSettings(configured);
}

/**
 * The accelerator qemu really boots with here: the same probe (and cached verdict) as a
 * boot, so a /dev/kvm that cannot run a guest reads "kvm: present, unusable (…) → tcg".
 */
async function acceleratorCheck(binary: string, requested: ReturnType<typeof resolveQemuSettings>['accelerator']): Promise<Check> {
  try {
    const choice = await chooseAccelerator({ guestArch: 'x86_64', requested, binary, home: homePaths().home });
    const emulated = choice.accel === 'tcg' ? ' (software emulation: slower, works everywhere)' : '';
    return { area: 'accelerator', ok: true, detail: `${choice.accel}${emulated} — ${choice.reason}${choice.source === 'cache' ? ' (probed earlier on this host state)' : ''}` };
  } catch (error) {
    return { area: 'accelerator', ok: false, detail: (error as Error).message, fix: 'unset MACVM_ACCEL / qemu.accelerator (auto falls back to tcg)' };
  }
}

/**
 * Asks the Orchard controller only when one is configured (the config's `orchard`, ORCHARD_URL):
 * the config is not even loaded unless its text mentions orchard, so doctor stays fast otherwise.
 */
async function orchardCheck(): Promise<Check> {
  const notConfigured: Check = { area: 'orchard', ok: true, detail: 'not configured: set `orchard` in macvm.config.ts (or ORCHARD_URL) to use a fleet of Macs' };
  let settings;
  try {
    const file = await findConfigFile(process.cwd());
    if (file && /\borchard\b/.test(await readFile(file, 'utf8'))) settings = (await loadConfig()).orchard;
  } catch (error) {
    return { area: 'orchard', ok: false, detail: (error as Error).message.split('\n')[0]! };
  }
  const { checkOrchard } = await import('../../vm/orchard/doctor.js');
  const result = await checkOrchard(settings);
  return result ? { area: 'orchard', ...result } : notConfigured;
}

/**
 * vz needs macOS on Apple Silicon, the addon built (npm run build:native), and vmhost: a
 * copy of node signed with the virtualization entitlement (made by --fix).
 */
async function vzChecks(fix: boolean): Promise<Check[]> {
  if (platform() !== 'darwin' || arch() !== 'arm64') {
    return [{ area: 'vz', ok: false, detail: 'needs macOS 12+ on Apple Silicon (not this host)', notForThisHost: true }];
  }
  const checks: Check[] = [];
  try {
    const { loadVzAddon } = await import('../../vm/vz/addon.js');
    loadVzAddon();
    checks.push({ area: 'vz addon', ok: true, detail: 'Virtualization.framework addon loads' });
  } catch (error) {
    checks.push({ area: 'vz addon', ok: false, detail: (error as Error).message.split('\n')[0]!, fix: 'npm run build:native' });
  }
  const { ensureVmhostBinary } = await import('../../vm/vz/vmhost-binary.js');
  const vmhost = await ensureVmhostBinary({ fix });
  checks.push(
    vmhost.ok
      ? { area: 'vz vmhost', ok: true, detail: `${vmhost.path} carries com.apple.security.virtualization${vmhost.fixed ? ' (signed now)' : ''}` }
      : { area: 'vz vmhost', ok: false, detail: vmhost.problem ?? 'vmhost is not signed', fix: 'macvm doctor --fix' },
  );
  return checks;
}

async function versionOf(bin: string, args: string[]): Promise<string | undefined> {
  const result = await execa(bin, args, { reject: false, timeout: 10_000 });
  return result.exitCode === 0 ? result.stdout.split('\n')[0]?.trim() : undefined;
}

async function qemuInstalled(): Promise<boolean> {
  return (await versionOf('qemu-img', ['--version'])) !== undefined;
}

async function imageBuilt(name: string): Promise<boolean> {
  return exists(`${homePaths().image(name)}/image.json`);
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

async function aptInstall(packages: string[], log: NodeJS.WritableStream | undefined): Promise<void> {
  if (!(await exists('/usr/bin/apt-get'))) {
    throw new MacvmError('MACVM_HOST_TOOL_MISSING', `Missing packages: ${packages.join(', ')}, and this host has no apt-get.`, {
      hint: 'Install the equivalents with your package manager (on macOS: brew install qemu).',
    });
  }
  const root = process.getuid?.() === 0;
  if (!root && !(await findTool('sudo'))) {
    throw new MacvmError('MACVM_HOST_TOOL_MISSING', `Missing packages: ${packages.join(', ')}; installing them needs root, and this host has no sudo.`, {
      hint: `As root: apt-get install -y --no-install-recommends ${packages.join(' ')}`,
    });
  }
  log?.write(`Installing ${packages.join(' ')} …\n`);
  // sudo resets the environment, so DEBIAN_FRONTEND goes through env(1); -n: fail rather than ask for a password.
  const run = (args: string[]) => {
    const [bin, ...rest] = root ? args : ['sudo', '-n', 'env', 'DEBIAN_FRONTEND=noninteractive', ...args];
    return execa(bin!, rest, { env: { DEBIAN_FRONTEND: 'noninteractive' }, reject: false, stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' });
  };
  await run(['apt-get', 'update', '-qq']);
  const result = await run(['apt-get', 'install', '-y', '-qq', '--no-install-recommends', ...packages]);
  if (result.exitCode !== 0) {
    throw new MacvmError('MACVM_HOST_TOOL_MISSING', `apt-get could not install ${packages.join(' ')}:\n${String(result.stderr || result.message).trim().split('\n').slice(-5).join('\n')}`, {
      hint: `Run it yourself${root ? '' : ' (doctor uses `sudo -n`, which needs passwordless sudo)'}: sudo apt-get install -y --no-install-recommends ${packages.join(' ')}`,
    });
  }
}
