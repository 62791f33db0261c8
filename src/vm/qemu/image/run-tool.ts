import { execa } from 'execa';
import { delimiter } from 'node:path';
import { MacvmError } from '../../../errors.js';
import { toolSearchPath } from './host-tools.js';

/**
 * Runs one host tool of the image build and turns any failure into
 * MACVM_IMAGE_BUILD_FAILED naming the step, the command and the tool's own stderr,
 * so a broken build says where it broke without a rerun.
 */
export async function runTool(step: string, file: string, args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): Promise<string> {
  // sbin dirs on PATH: mkfs.ext4 and debugfs live there and a non-root PATH often lacks them.
  const env = { PATH: toolSearchPath().join(delimiter), ...options.env };
  const result = await execa(file, args, { cwd: options.cwd, env, reject: false, stdin: 'ignore' });
  if (result.exitCode !== 0 || result.failed) {
    const output = `${result.stderr ?? ''}\n${result.stdout ?? ''}`.trim().split('\n').slice(-15).join('\n');
    throw new MacvmError('MACVM_IMAGE_BUILD_FAILED', `The image build failed at "${step}": ${file} exited ${result.exitCode ?? 'abnormally'}.\n${output || result.message}`, {
      hint: 'Fix the cause above and run the build again; downloads are cached, so a rerun is quick.',
      details: { step, command: [file, ...args].join(' ') },
    });
  }
  return result.stdout;
}
