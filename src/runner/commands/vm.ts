import { MacvmError } from '../../errors.js';
import { connectGuest } from '../../guest/session.js';
import { quoteShellWord } from '../../guest/shell-quote.js';
import { attachVm, type AttachedVM } from '../../vm/attach.js';
import { DEFAULTS } from '../../vm/defaults.js';
import { Deadline } from '../../shared/deadline.js';
import { homePaths } from '../../vm/home.js';
import { isProviderName, loadProvider, parseProviderName, PROVIDER_NAMES, providerDefinition } from '../../vm/registry.js';
import { listRuntimeDirs, readVmRecord } from '../../vm/runtime-dir.js';
import { newSession } from '../../vm/session.js';
import { startMacVM } from '../../machine/start.js';
import type { ProviderName } from '../../vm/types.js';
import { loadConfig, providerConfigView, type ResolvedConfig } from '../config.js';
import type { Command } from './command.js';
import { parseCommandArgs, positiveInt, table, writeJson } from './args.js';

export const vmStartCommand: Command = {
  path: ['vm', 'start'],
  summary: 'Start a VM that outlives this command',
  help: `Usage: macvm vm start <image> [options]

Clones <image>, boots it headless and waits until SSH answers. The VM keeps running
after this command exits; use \`macvm vm exec\`, \`vm stop\` and \`vm rm\` on its id.
An orchard VM runs on its controller and has no SSH port of its own here (the port
forward that reached it closes with this command): \`macvm vm exec\` opens a new one.

Options:
  --provider <name>   ${PROVIDER_NAMES.join(', ')} (vz is the default on Apple Silicon, qemu elsewhere);
                      default: macvm.config.ts's provider or MACVM_PROVIDER
  --cpus <n>          virtual CPUs (default ${DEFAULTS.cpus})
  --memory <size>     e.g. 1GiB, 512MiB (default ${DEFAULTS.memoryMiB} MiB)
  --disk <size>       grow the clone's disk to this size
  --display           attach a display (for screenshots)
  --deadline <s>      seconds allowed for clone → boot → SSH (default ${DEFAULTS.readyTimeoutMs / 1000})
  --json              print the VM as JSON

Example:
  id=$(macvm vm start linux-test --json | jq -r .id)`,
  async run({ argv, stdout, stderr }) {
    const { values, positionals } = parseCommandArgs('vm start', argv, {
      provider: { type: 'string' },
      cpus: { type: 'string' },
      memory: { type: 'string' },
      disk: { type: 'string' },
      display: { type: 'boolean' },
      deadline: { type: 'string' },
      json: { type: 'boolean' },
    });
    const image = positionals[0];
    if (!image) throw new MacvmError('MACVM_BAD_ARGUMENT', 'macvm vm start: which image? e.g. `macvm vm start linux-test`.');
    const { provider, settings } = await configuredProvider(values.provider === undefined ? undefined : providerName(values.provider));
    const deadlineSeconds = positiveInt('vm start', 'deadline', values.deadline);
    const session = newSession();
    const vm = await startMacVM({
      image,
      provider,
      providerSettings: settings,
      cpus: positiveInt('vm start', 'cpus', values.cpus),
      memory: values.memory,
      disk: values.disk,
      display: values.display,
      deadline: deadlineSeconds ? deadlineSeconds * 1000 : undefined,
      session: { ...session, id: `cli-${session.id}` },
      detached: true,
      onStep: values.json ? undefined : (step, ms) => stderr.write(`  ${(ms / 1000).toFixed(1).padStart(5)}s  ${step}\n`),
    });
    // Only the SSH connection closes here; the VM process was started detached and lives on.
    await vm.session.close();
    // A remote VM's SSH port (orchard) is this process's port-forward listener and dies with the
    // CLI: say where the VM lives instead; `vm exec` opens a forward of its own.
    const listing = await providerDefinition(provider).describe((await readVmRecord(homePaths().vm(vm.id)))!);
    if (listing.state === 'remote') {
      if (values.json) {
        writeJson(stdout, { ...vm.facts, ...listing.extra, consoleLog: vm.consoleLogPath });
      } else {
        stdout.write(`${vm.id}  ready in ${(vm.facts.readyMs / 1000).toFixed(1)}s  (${listing.lives ?? `reached ${listing.reach}`}; reach it with \`macvm vm exec\`)\n`);
        stdout.write(`  macvm vm exec ${vm.id} -- uname -a\n  macvm vm rm ${vm.id}\n`);
      }
      return 0;
    }
    const endpoint = { host: vm.session.host, port: vm.session.port };
    if (values.json) {
      writeJson(stdout, { ...vm.facts, ssh: endpoint, consoleLog: vm.consoleLogPath });
    } else {
      stdout.write(`${vm.id}  ready in ${(vm.facts.readyMs / 1000).toFixed(1)}s  (ssh ${endpoint.host}:${endpoint.port})\n`);
      stdout.write(`  macvm vm exec ${vm.id} -- uname -a\n  macvm vm rm ${vm.id}\n`);
    }
    return 0;
  },
};

export const vmLsCommand: Command = {
  path: ['vm', 'ls'],
  summary: 'List VMs',
  help: `Usage: macvm vm ls [--json]

Lists every VM runtime dir under MACVM_HOME/run: running VMs and anything a dead run
left behind (\`macvm gc\` removes those). An orchard VM lives on its controller, which
is not asked here: its STATE is "remote" once it was created there, and SSH names the
controller it is reached through (\`macvm vm exec\` says if it is gone).`,
  async run({ argv, stdout }) {
    const { values } = parseCommandArgs('vm ls', argv, { json: { type: 'boolean' } }, false);
    const vms = await Promise.all(
      (await listRuntimeDirs()).map(async ({ id, dir, record }) => {
        const listing = record && isProviderName(record.provider) ? await providerDefinition(record.provider).describe(record) : undefined;
        return {
          id,
          dir,
          image: record?.image,
          provider: record?.provider,
          session: record?.session,
          detached: record?.detached ?? false,
          state: !record ? 'corrupt' : (listing?.state ?? 'unknown'),
          pid: record?.pid,
          ssh: record?.ssh,
          reach: listing?.reach ?? '-',
          ...listing?.extra,
          createdAt: record?.createdAt,
        };
      }),
    );
    if (values.json) {
      writeJson(stdout, vms);
      return 0;
    }
    if (vms.length === 0) {
      stdout.write('No VMs.\n');
      return 0;
    }
    const rows = [['ID', 'IMAGE', 'PROVIDER', 'STATE', 'SSH', 'AGE', 'SESSION']];
    for (const vm of vms) {
      rows.push([vm.id, vm.image ?? '?', vm.provider ?? '?', vm.state, vm.reach, age(vm.createdAt), vm.session ?? '?']);
    }
    stdout.write(table(rows));
    return 0;
  },
};

export const vmExecCommand: Command = {
  path: ['vm', 'exec'],
  summary: 'Run a command in a VM',
  help: `Usage: macvm vm exec <id> [-i] [--timeout <s>] -- <command> [args...]

Runs the command in the guest over SSH (host key pinned), streaming its output.
Exits with the command's exit code.

  -i, --interactive   pipe this command's standard input to the guest command
                      (as tart exec -i and docker exec -i); without it the guest
                      command's stdin is empty
  --timeout <s>       kill the guest command's whole process tree after <s> seconds

Examples:
  macvm vm exec macvm-1a2b3c4d -- uname -a
  tar -c ./app | macvm vm exec -i macvm-1a2b3c4d -- tar -x -C /tmp`,
  async run({ argv, stdout, stderr, stdin }) {
    const dashes = argv.indexOf('--');
    const own = dashes >= 0 ? argv.slice(0, dashes) : argv.slice(0, 1);
    const commandWords = dashes >= 0 ? argv.slice(dashes + 1) : argv.slice(1);
    const { values, positionals } = parseCommandArgs('vm exec', own, { timeout: { type: 'string' }, interactive: { type: 'boolean', short: 'i' } });
    const id = positionals[0];
    if (!id) throw new MacvmError('MACVM_BAD_ARGUMENT', 'macvm vm exec: which VM? Usage: macvm vm exec <id> -- <command> [args...]', { hint: 'See `macvm vm ls` for the ids.' });
    if (commandWords.length === 0) throw new MacvmError('MACVM_BAD_ARGUMENT', `macvm vm exec: no command to run in ${id}. Usage: macvm vm exec <id> -- <command> [args...]`);
    // Bad flags fail before anything connects.
    const timeout = positiveInt('vm exec', 'timeout', values.timeout);
    const { attached, provider, settings } = await attachConfigured(id);
    const { record } = attached;
    try {
      if (!provider) throw new MacvmError('MACVM_VM_STOPPED', `VM ${id} was made by a provider this macvm does not know ("${record.provider}"); \`macvm vm rm ${id}\` removes it.`);
      const definition = providerDefinition(provider);
      const endpoint = await definition.endpoint(id, record, attached.running);
      const image = await (await loadProvider(provider, { settings })).prepare(record.image);
      const session = await connectGuest({ host: endpoint.host, port: endpoint.port, credentials: image.ssh, insecureAcceptAnyHostKey: image.ssh.insecureAcceptAnyHostKey, connectTimeoutMs: definition.defaults.connectTimeoutMs });
      try {
        // One word is taken as a shell command line ("uname -a"); several are argv, quoted.
        const command = commandWords.length === 1 ? commandWords[0]! : commandWords.map(quoteShellWord).join(' ');
        const result = await session.exec(command, {
          reject: false,
          timeoutMs: timeout ? timeout * 1000 : undefined,
          ...(values.interactive ? { stdin: stdin ?? process.stdin } : {}),
          onStdout: (chunk) => stdout.write(chunk),
          onStderr: (chunk) => stderr.write(chunk),
        });
        return result.exitCode ?? 128;
      } finally {
        // Our stdin, once piped, would keep this process alive after the command is done.
        if (values.interactive && !stdin) process.stdin.destroy();
        await session.close();
      }
    } finally {
      // orchard: this process's port-forward listener; the VM keeps running.
      await attached.disconnect();
    }
  },
};

export const vmStopCommand: Command = {
  path: ['vm', 'stop'],
  summary: 'Power a VM down',
  help: `Usage: macvm vm stop <id> [--timeout <s>]

Asks the guest to power down (qemu: ACPI; vz: a stop request; tart: \`tart stop\`) and
waits (default ${DEFAULTS.stopGracefulMs / 1000} s), then stops the VM process hard. The clone stays on disk;
\`macvm vm rm\` deletes it.

orchard: Orchard has no stopped-but-kept state, so stopping deletes the VM on its
controller (--timeout does not apply); \`macvm vm rm\` then removes its runtime dir.`,
  async run({ argv, stdout }) {
    const { values, positionals } = parseCommandArgs('vm stop', argv, { timeout: { type: 'string' } });
    const ids = requireIds('vm stop', positionals);
    const timeout = positiveInt('vm stop', 'timeout', values.timeout);
    for (const id of ids) {
      const { attached } = await attachConfigured(id);
      try {
        await attached.running?.stop({ gracefulMs: timeout ? timeout * 1000 : DEFAULTS.stopGracefulMs });
      } finally {
        await attached.disconnect();
      }
      const { record } = attached;
      const said = isProviderName(record.provider) ? providerDefinition(record.provider).stoppedMessage?.(id, record, attached.running !== undefined) : undefined;
      stdout.write(`${said ?? `${id} stopped`}\n`);
    }
    return 0;
  },
};

export const vmRmCommand: Command = {
  path: ['vm', 'rm'],
  summary: 'Stop a VM and delete its clone',
  help: `Usage: macvm vm rm <id>... [--timeout <s>]

Stops each VM (graceful power-down first) and deletes its clone and runtime dir.`,
  async run({ argv, stdout }) {
    const { values, positionals } = parseCommandArgs('vm rm', argv, { timeout: { type: 'string' } });
    const timeout = positiveInt('vm rm', 'timeout', values.timeout);
    for (const id of requireIds('vm rm', positionals)) {
      const { attached } = await attachConfigured(id);
      try {
        await attached.running?.stop({ gracefulMs: timeout ? timeout * 1000 : DEFAULTS.stopGracefulMs });
        await attached.clone.destroy();
      } finally {
        await attached.disconnect();
      }
      stdout.write(`${id} removed\n`);
    }
    return 0;
  },
};

function requireIds(verb: string, positionals: string[]): string[] {
  if (positionals.length === 0) throw new MacvmError('MACVM_BAD_ARGUMENT', `macvm ${verb}: which VM? Give one or more ids (see \`macvm vm ls\`).`);
  return positionals;
}

/**
 * The provider (the flag, else the config's / MACVM_PROVIDER's) and its settings from
 * macvm.config.ts — pinned guest host keys, the ssh target, the Orchard controller — the same
 * settings \`macvm test\` gives it.
 */
async function configuredProvider(requested: ProviderName | undefined): Promise<{ provider: ProviderName; settings: Record<string, unknown> | undefined }> {
  const config = await loadedConfig();
  const provider = requested ?? config.provider;
  return { provider, settings: settingsFor(provider, config) };
}

/**
 * A VM by id, attached with the configured settings of ITS provider (orchard needs them to reach
 * its controller). `provider` is undefined for a record naming no provider macvm knows.
 */
async function attachConfigured(id: string): Promise<{ attached: AttachedVM; provider: ProviderName | undefined; settings: Record<string, unknown> | undefined }> {
  const config = await loadedConfig();
  const named = (await readVmRecord(homePaths().vm(id)))?.provider;
  const provider = isProviderName(named) ? named : undefined;
  const settings = provider ? settingsFor(provider, config) : undefined;
  // attachVm reads the record again and names an unknown id with the known ones.
  return { attached: await attachVm(id, { settings }), provider, settings };
}

async function loadedConfig(): Promise<ResolvedConfig> {
  const config = await loadConfig();
  process.env.MACVM_HOME = config.home;
  return config;
}

function settingsFor(provider: ProviderName, config: ResolvedConfig): Record<string, unknown> | undefined {
  return providerDefinition(provider).settings(providerConfigView(config, provider));
}

function providerName(value: string): ProviderName {
  return parseProviderName(value);
}

function age(iso: string | undefined): string {
  if (!iso) return '?';
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  return `${Math.round(seconds / 3600)}h`;
}
