import { rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { createProgress } from './progress.js';
import type { ProgressMessage } from './progress-client.js';

/**
 * The main process's end of the progress channel: workers send one JSON line per suite
 * state change (see progress-client.ts) and this draws one line per suite on stderr.
 */
export async function startProgressServer(sessionDir: string, options: { quiet?: boolean } = {}): Promise<{ socketPath: string; close(): Promise<void> }> {
  const socketPath = join(sessionDir, 'progress.sock');
  await rm(socketPath, { force: true });
  const display = createProgress({ stream: process.stderr, isTTY: Boolean(process.stderr.isTTY), quiet: options.quiet });
  const suites = new Map<string, ReturnType<typeof display.suite>>();
  const server: Server = createServer((socket) => {
    socket.on('error', () => {});
    const lines = createInterface({ input: socket });
    lines.on('line', (line) => {
      let message: ProgressMessage;
      try {
        message = JSON.parse(line) as ProgressMessage;
      } catch {
        return;
      }
      let suite = suites.get(message.suite);
      if (!suite) {
        suite = display.suite(message.suite);
        suites.set(message.suite, suite);
      }
      if (message.state === 'done' || message.state === 'failed') {
        suite.done(message.state === 'done' && message.ok !== false, message.detail);
        suites.delete(message.suite);
      } else {
        suite.update(message.state, message.detail);
      }
    });
  });
  server.unref();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  return {
    socketPath,
    async close() {
      display.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(socketPath, { force: true });
    },
  };
}
