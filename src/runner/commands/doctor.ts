import { access } from 'node:fs/promises';
import { execa } from 'execa';
import { MacvmError } from '../../errors.js';
import type { DoctorCheck, DoctorContext } from '../../vm/doctor-check.js';
import { currentHost } from '../../vm/host-facts.js';
import { findTool, missingRequirements, requirementsFor } from '../../vm/host-requirements.js';
import { defaultProviderName, providerDefinitions } from '../../vm/registry.js';
import { findConfigFile, loadConfig, providerConfigView, type ResolvedConfig } from '../config.js';
import type { Command } from './command.js';
import { parseCommandArgs, writeJson } from './args.js';
import { progressPrinter } from './progress-printer.js';

type Check = DoctorCheck;

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
    const withTestTools = values['with-test-tools'] ?? false;
    const printer = progressPrinter(stderr, { quiet: values.json });
    const progress: DoctorContext['progress'] = { say: (line) => !values.json && stderr.write(`${line}\n`), update: printer.update, done: printer.done };
    let checks = await runChecks({ withTestTools, fix: false, progress });
    if (values.fix) {
      const apt = [...new Set(checks.filter((c) => !c.ok).flatMap((c) => c.apt ?? []))];
      if (apt.length > 0) await aptInstall(apt, values.json ? undefined : stderr);
      checks = await runChecks({ withTestTools, fix: true, progress });
    }
    // One verdict for the exit code and --json's `ok`: what fails and could work on this host.
    const problems = checks.filter((c) => !c.ok && !c.notForThisHost);
    // What --fix can mend here; vz and tart on a Linux host are facts, not problems.
    const fixable = problems.filter((p) => p.apt?.length || p.fixedByDoctor);
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

/**
 * The config first (a config that does not load fails every run), the host, what macvm's own
 * tests need, then each provider's own checks. With `fix`, each provider first mends what it can
 * (qemu builds its missing guests; vz signs vmhost) and then reports.
 */
async function runChecks(options: { withTestTools: boolean; fix: boolean; progress: DoctorContext['progress'] }): Promise<Check[]> {
  const { check: config, loaded } = await configCheck();
  const host = currentHost();
  const checks: Check[] = [
    config,
    { area: 'host', ok: true, detail: `${host.platform} ${host.arch}, ${host.cpus} cores, ${Math.round(host.totalMemoryBytes / 2 ** 30)} GiB; default provider: ${defaultProviderName(host)}` },
  ];
  if (options.withTestTools) {
    const testTools = requirementsFor('tests');
    const missing = await missingRequirements(testTools);
    checks.push(
      missing.tools.length === 0
        ? { area: 'test tools', ok: true, detail: `all ${testTools.length} programs macvm's own tests run on this host are installed` }
        : { area: 'test tools', ok: false, detail: `missing: ${missing.tools.join(', ')}`, apt: missing.aptPackages },
    );
  }
  for (const definition of providerDefinitions()) {
    const context: DoctorContext = {
      host,
      config: loaded ? providerConfigView(loaded, definition.name) : { images: {} },
      fix: options.fix,
      withTestTools: options.withTestTools,
      progress: options.progress,
    };
    if (options.fix && definition.runsOn(host)) await definition.repair?.(context);
    checks.push(...(await definition.doctor(context)));
  }
  return checks;
}

/** A macvm.config.ts that does not load fails every run: doctor says so first. */
async function configCheck(): Promise<{ check: Check; loaded?: ResolvedConfig }> {
  const file = await findConfigFile(process.cwd()).catch(() => undefined);
  if (!file) return { check: { area: 'config', ok: true, detail: 'no macvm.config.ts here: defaults apply' } };
  try {
    const loaded = await loadConfig();
    return { check: { area: 'config', ok: true, detail: `${file} is valid` }, loaded };
  } catch (error) {
    return { check: { area: 'config', ok: false, detail: (error as Error).message.split('\n').slice(0, 4).join(' '), fix: `edit ${file}` } };
  }
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
