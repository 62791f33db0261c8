/**
 * Just enough of a terminal to check what a user would see: it applies text, "\n", "\r",
 * cursor up (ESC [ n A), erase below (ESC [ J) and erase line (ESC [ 2K) to a grid of lines,
 * and throws on any other escape sequence, so output the display does not understand fails
 * the test instead of passing unnoticed.
 */
export class VirtualTerminal {
  readonly lines: string[] = [''];
  row = 0;
  col = 0;
  columns: number;
  isTTY = true;
  /** Number of write() calls. */
  writes = 0;

  constructor(columns = 80) {
    this.columns = columns;
  }

  write(chunk: string | Uint8Array): boolean {
    this.writes++;
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    for (let i = 0; i < text.length; ) {
      if (text.startsWith('\x1b[', i)) {
        const match = /^\x1b\[(\d*)([A-Za-z])/.exec(text.slice(i));
        if (!match) throw new Error(`unterminated escape at ${JSON.stringify(text.slice(i, i + 8))}`);
        this.escape(match[1] === '' ? undefined : Number(match[1]), match[2]!);
        i += match[0].length;
        continue;
      }
      const ch = String.fromCodePoint(text.codePointAt(i)!);
      i += ch.length;
      if (ch === '\n') {
        this.row++;
        this.col = 0;
        while (this.lines.length <= this.row) this.lines.push('');
      } else if (ch === '\r') {
        this.col = 0;
      } else {
        const line = [...(this.lines[this.row] ?? '')];
        while (line.length < this.col) line.push(' ');
        line[this.col] = ch;
        this.lines[this.row] = line.join('');
        this.col++;
        if (this.col >= this.columns) throw new Error(`line wrapped: ${JSON.stringify(this.lines[this.row])}`);
      }
    }
    return true;
  }

  private escape(n: number | undefined, command: string): void {
    if (command === 'A') {
      this.row = Math.max(0, this.row - (n ?? 1));
    } else if (command === 'J') {
      this.lines[this.row] = [...this.lines[this.row]!].slice(0, this.col).join('');
      this.lines.length = this.row + 1;
    } else if (command === 'K' && n === 2) {
      this.lines[this.row] = '';
    } else {
      throw new Error(`unexpected escape sequence ESC[${n ?? ''}${command}`);
    }
  }

  /** What is on screen, without the empty line the cursor sits on. */
  screen(): string[] {
    const lines = [...this.lines];
    while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    return lines;
  }
}
