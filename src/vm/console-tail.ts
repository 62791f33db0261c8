import { open } from 'node:fs/promises';

/**
 * The last lines of a console log, cleaned for humans: ANSI escapes and carriage returns
 * removed. Reads only the end of the file, since console logs of long runs grow large.
 */
export async function consoleTail(path: string | undefined, lines = 30, maxBytes = 64 * 1024): Promise<string> {
  if (!path) return '';
  let handle;
  try {
    handle = await open(path, 'r');
  } catch {
    return '';
  }
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, maxBytes);
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, size - length);
    return cleanConsoleText(buffer.toString('utf8')).trimEnd().split('\n').slice(-lines).join('\n');
  } finally {
    await handle.close();
  }
}

export function cleanConsoleText(text: string): string {
  return text
    .replace(/\x1b\[[0-9;?]*[ -/]*[@-~]/g, '')
    .replace(/\x1b[()][A-Za-z0-9]/g, '')
    .replace(/\x1bc/g, '')
    .replace(/\r+\n/g, '\n')
    .replace(/\r/g, '\n');
}
