import { StringDecoder } from 'node:string_decoder';

/**
 * One output stream of a command. Bytes are kept and decoded once at the end, so
 * multi-byte characters split across packets survive; the streaming callback gets
 * text from a decoder of its own, as the bytes arrive.
 */
export class OutputStream {
  private readonly chunks: Buffer[] = [];
  private readonly decoder = new StringDecoder('utf8');

  constructor(private readonly onText: ((chunk: string) => void) | undefined) {}

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    if (this.onText) emit(this.onText, this.decoder.write(chunk));
  }

  /** Flushes the callback's decoder and returns the whole output, as execa does: one final newline stripped. */
  end(): string {
    if (this.onText) emit(this.onText, this.decoder.end());
    return stripFinalNewline(Buffer.concat(this.chunks).toString('utf8'));
  }
}

function emit(callback: (chunk: string) => void, text: string): void {
  if (text.length > 0) callback(text);
}

function stripFinalNewline(text: string): string {
  if (text.endsWith('\r\n')) return text.slice(0, -2);
  if (text.endsWith('\n')) return text.slice(0, -1);
  return text;
}
