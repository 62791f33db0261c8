/**
 * One `pullImage` in a process of its own, for tests of what happens across processes:
 *
 *   node --import tsx test/support/oci-pull-child.ts '<json: { reference, options }>'
 *
 * Prints the PullResult as one JSON line on stdout; on failure prints `{ "error": code, "message" }`
 * and exits 1.
 */
import { pullImage, type PullOptions } from '../../src/oci/pull.js';

const { reference, options } = JSON.parse(process.argv[2] ?? '{}') as { reference: string; options: PullOptions };
try {
  const result = await pullImage(reference, options);
  process.stdout.write(`${JSON.stringify(result)}\n`);
} catch (error) {
  const failure = error as { code?: string; message?: string };
  process.stdout.write(`${JSON.stringify({ error: failure.code ?? 'unknown', message: failure.message })}\n`);
  process.exitCode = 1;
}
