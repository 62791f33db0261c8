import { execa } from 'execa';
import { MacvmError, type MacvmErrorCode } from '../../errors.js';

/**
 * Running the `tart` CLI and turning its failures into MacvmErrors. Tart prints an error's
 * description on stderr and exits 2 for "does not exist" / "not running" / "already running",
 * 1 otherwise (Sources/tart/VMStorageHelper.swift, RuntimeError).
 */
export interface TartCli {
  /** The tart executable (default "tart" from PATH). */
  binary: string;
  env?: NodeJS.ProcessEnv;
}

export interface TartListEntry {
  Name: string;
  Source: string;
  State: string;
  Running?: boolean;
  Disk?: number;
  Size?: number;
  Accessed?: string;
}

export async function runTart(cli: TartCli, args: string[], options: { signal?: AbortSignal; fallback?: MacvmErrorCode } = {}): Promise<string> {
  let result;
  try {
    result = await execa(cli.binary, args, { reject: false, env: cli.env, cancelSignal: options.signal, stdin: 'ignore' });
  } catch (error) {
    throw tartMissing(cli, error);
  }
  if ((result as { code?: string }).code === 'ENOENT' || (result.failed && /ENOENT/.test(String(result.message ?? '')))) throw tartMissing(cli);
  if (result.exitCode === 0) return result.stdout;
  throw tartError(args, result.stderr || result.stdout, options.fallback ?? 'MACVM_BOOT_FAILED');
}

/** Maps what tart said on failure to our codes. */
export function tartError(args: string[], output: string, fallback: MacvmErrorCode): MacvmError {
  const text = output.trim() || `tart ${args[0]} failed without output`;
  const command = `tart ${args.join(' ')}`;
  if (/exceeds the system limit/i.test(text)) {
    return new MacvmError('MACVM_SLOT_LIMIT', `${command}: ${text}`, {
      hint: 'macOS runs at most two macOS VMs per host. Stop one (`tart list`, `tart stop <name>`) or lower `slots`.',
    });
  }
  if (/the specified VM "[^"]*" does not exist/i.test(text)) {
    const code: MacvmErrorCode = args[0] === 'clone' ? 'MACVM_IMAGE_NOT_FOUND' : 'MACVM_VM_NOT_FOUND';
    return new MacvmError(code, `${command}: ${text}`, {
      hint: args[0] === 'clone' ? 'Pull the image first (`tart pull <image>`), or check `tart list`.' : undefined,
    });
  }
  return new MacvmError(fallback, `${command}: ${text}`);
}

function tartMissing(cli: TartCli, cause?: unknown): MacvmError {
  return new MacvmError('MACVM_HOST_TOOL_MISSING', `The tart CLI (${cli.binary}) is not installed.`, {
    hint: 'Install it with `brew install cirruslabs/cli/tart`, or use the vz provider.',
    cause,
  });
}

export async function tartList(cli: TartCli, signal?: AbortSignal): Promise<TartListEntry[]> {
  const out = await runTart(cli, ['list', '--format', 'json'], { signal, fallback: 'MACVM_PROVIDER_UNAVAILABLE' });
  let parsed: unknown;
  try {
    parsed = JSON.parse(out);
  } catch {
    throw new MacvmError('MACVM_PROVIDER_UNAVAILABLE', `\`tart list --format json\` printed something that is not JSON: ${out.slice(0, 120)}`);
  }
  if (!Array.isArray(parsed)) throw new MacvmError('MACVM_PROVIDER_UNAVAILABLE', '`tart list --format json` did not print a JSON array.');
  return parsed.filter((e): e is TartListEntry => typeof e === 'object' && e !== null && typeof (e as TartListEntry).Name === 'string');
}

/** `tart ip` prints just the address. */
export function parseTartIp(stdout: string): string | undefined {
  const ip = stdout.trim().split('\n').pop()?.trim();
  return ip && /^\d{1,3}(\.\d{1,3}){3}$/.test(ip) ? ip : undefined;
}
