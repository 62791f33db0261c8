import { createServer } from 'node:net';

/**
 * Asks the OS for a free TCP port on 127.0.0.1. Another process can take it before we
 * use it, so callers that hand it to another program retry on "address in use".
 */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
