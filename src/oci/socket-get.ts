/**
 * A GET on a connection of its own, its response body read straight off the socket: the path
 * every blob of a pull takes. node:http copies each body slice out of the socket's buffer into a
 * new Buffer and passes it through two streams (IncomingMessage, then its async iterator); for
 * the four big blobs of the bench image that was 0.76-0.92 s of main-thread CPU per 391 MiB,
 * against 0.37-0.45 s for the socket alone. Here a body chunk of 32 KiB or more is the socket's
 * own read buffer (which the pull then moves to a decode worker without a copy), sliced only where
 * HTTP framing cuts it; smaller pieces (TLS records) are gathered into 1 MiB chunks first.
 *
 * HTTP/1.1 as RFC 9112 has it, for one GET: the head up to 64 KiB, 1xx heads skipped, a body
 * framed by chunked coding, Content-Length, or the connection's close. `Connection: close`, so
 * the connection never goes back to a pool and nothing is left to drain. TLS as node:https does
 * it: the system's CAs plus NODE_EXTRA_CA_CERTS, the host name checked, SNI for names.
 */
import { type IncomingHttpHeaders } from 'node:http';
import { type Socket, connect as netConnect, isIP } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

export interface SocketGetRequest {
  url: URL;
  headers: Record<string, string>;
  signal?: AbortSignal;
  idleTimeoutMs: number;
}

export interface SocketGetResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: SocketBody;
}

const MAX_HEAD_BYTES = 64 * 1024;
/** Body bytes queued before the socket is paused: enough to ride out a slow consumer's hiccup. */
const HIGH_WATER_BYTES = 4 * 1024 * 1024;
/**
 * Body pieces smaller than this are gathered (copied) into SLAB_BYTES buffers before they go
 * out. Over TLS a read is one record, 16 KiB at most, and every chunk costs the pull a trip
 * through the iterators, the keeper and a decode worker; a plain socket reads 64 KiB at a time,
 * and those pass through as they are, uncopied.
 */
const SMALL_CHUNK_BYTES = 32 * 1024;
const SLAB_BYTES = 1024 * 1024;

/** Sends the GET and resolves once the response head is in; the body is then read from `body`. */
export function socketGet(request: SocketGetRequest): Promise<SocketGetResponse> {
  const { url, signal } = request;
  signal?.throwIfAborted();
  const lines = [`GET ${url.pathname}${url.search} HTTP/1.1`, `Host: ${url.host}`];
  for (const [name, value] of Object.entries(request.headers)) {
    // A line break in a value would start a header of its own.
    if (/[\r\n]/.test(name) || /[\r\n]/.test(value)) throw new TypeError(`the ${name} header holds a line break`);
    lines.push(`${name}: ${value}`);
  }
  lines.push('Connection: close', '', '');
  const head = lines.join('\r\n');
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port) || (url.protocol === 'https:' ? 443 : 80);
  const socket: Socket =
    url.protocol === 'https:'
      ? tlsConnect({ host, port, ...(isIP(host) ? {} : { servername: host }), ALPNProtocols: ['http/1.1'] })
      : netConnect({ host, port });
  socket.setNoDelay(true);
  socket.setTimeout(request.idleTimeoutMs, () => {
    socket.destroy(Object.assign(new Error(`no data for ${request.idleTimeoutMs / 1000} s`), { code: 'ETIMEDOUT' }));
  });
  const onAbort = () => socket.destroy(signal!.reason ?? new Error('aborted'));
  signal?.addEventListener('abort', onAbort, { once: true });
  socket.once('close', () => signal?.removeEventListener('abort', onAbort));

  socket.write(head);

  return new Promise<SocketGetResponse>((resolve, reject) => {
    let received: Buffer = Buffer.alloc(0);
    const onError = (error: Error) => {
      cleanup();
      reject(error);
    };
    const onClose = () => onError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
    const onData = (chunk: Buffer) => {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      for (;;) {
        const end = received.indexOf('\r\n\r\n');
        if (end < 0 || end > MAX_HEAD_BYTES) {
          if (received.length > MAX_HEAD_BYTES) {
            onError(new Error(`the response head is larger than ${MAX_HEAD_BYTES} bytes`));
            socket.destroy();
          }
          return;
        }
        let parsed: { status: number; headers: IncomingHttpHeaders };
        let framing: Framing;
        try {
          parsed = parseHead(received.subarray(0, end).toString('latin1'));
          framing = framingOf(parsed.status, parsed.headers);
        } catch (error) {
          onError(error as Error);
          socket.destroy();
          return;
        }
        const rest = received.subarray(end + 4);
        if (parsed.status >= 100 && parsed.status < 200) {
          received = rest;
          continue;
        }
        cleanup();
        socket.pause();
        const body = new SocketBody(socket, framing);
        resolve({ ...parsed, body });
        body.start(rest);
        return;
      }
    };
    const cleanup = () => {
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
    };
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
  });
}

function parseHead(text: string): { status: number; headers: IncomingHttpHeaders } {
  const [statusLine = '', ...fields] = text.split('\r\n');
  const match = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(statusLine);
  if (!match) throw new Error(`the answer is not HTTP/1.1 (it begins "${statusLine.slice(0, 40)}")`);
  const headers: Record<string, string> = {};
  for (const field of fields) {
    const colon = field.indexOf(':');
    if (colon <= 0) throw new Error(`a response header line has no name: "${field.slice(0, 40)}"`);
    const name = field.slice(0, colon).trim().toLowerCase();
    const value = field.slice(colon + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  return { status: Number(match[1]), headers };
}

type Framing = { kind: 'length'; left: number } | { kind: 'chunked' } | { kind: 'close' };

function framingOf(status: number, headers: IncomingHttpHeaders): Framing {
  if (status === 204 || status === 304) return { kind: 'length', left: 0 };
  const coding = String(headers['transfer-encoding'] ?? '').toLowerCase();
  if (/(^|,)\s*chunked\s*$/.test(coding)) return { kind: 'chunked' };
  const length = headers['content-length'];
  if (typeof length === 'string') {
    // Repeated equal values ("5, 5") are allowed; anything else would make the body's end a guess.
    const values = new Set(length.split(',').map((v) => v.trim()));
    const only = [...values][0]!;
    if (values.size !== 1 || !/^\d+$/.test(only)) throw new Error(`the answer's Content-Length is "${length}"`);
    return { kind: 'length', left: Number(only) };
  }
  return { kind: 'close' };
}

/**
 * The body as an async iterable of Buffers. The socket is paused while HIGH_WATER_BYTES wait to
 * be read. `complete` once the framing says the body ended; a connection that closes before
 * that is an error from the iterator (ECONNRESET), as node:http reports it.
 */
export class SocketBody implements AsyncIterable<Buffer> {
  complete = false;
  private readonly queue: Buffer[] = [];
  private queued = 0;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  /** Chunked coding: bytes of the current chunk still to come, or where in its framing lines we are. */
  private chunkLeft = 0;
  private chunkState: 'size' | 'data' | 'data-end' | 'trailer' = 'size';
  private line = '';
  /** Small pieces gathered so far (see SMALL_CHUNK_BYTES); they go out when it fills or once the event loop has read all it could. */
  private slab: Buffer | undefined;
  private slabUsed = 0;
  private flushQueued = false;

  constructor(
    private readonly socket: Socket,
    private readonly framing: Framing,
  ) {}

  /** Takes over the socket; `first` is what came after the head in the same read. */
  start(first: Buffer): void {
    this.socket.on('data', (chunk: Buffer) => this.take(chunk));
    this.socket.on('error', (error) => this.fail(error));
    this.socket.on('close', () => {
      if (!this.complete && this.framing.kind === 'close') this.finish();
      else if (!this.complete) this.fail(Object.assign(new Error('the connection closed before the whole body came'), { code: 'ECONNRESET' }));
      this.signal();
    });
    if (first.length > 0) this.take(first);
    if (this.framing.kind === 'length' && this.framing.left === 0) this.finish();
    if (!this.complete) this.socket.resume();
  }

  /** Drops the rest of the body and the connection. */
  destroy(): void {
    this.socket.destroy();
    if (!this.complete) this.fail(new Error('the body was dropped'));
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    try {
      for (;;) {
        const chunk = this.queue.shift();
        if (chunk) {
          this.queued -= chunk.length;
          if (this.queued <= HIGH_WATER_BYTES / 2 && this.socket.isPaused() && !this.complete) this.socket.resume();
          yield chunk;
          continue;
        }
        if (this.failure) throw this.failure;
        if (this.complete) return;
        await new Promise<void>((resolve) => (this.wake = resolve));
      }
    } finally {
      if (!this.complete) this.socket.destroy();
    }
  }

  private take(chunk: Buffer): void {
    if (this.complete || this.failure) return;
    try {
      if (this.framing.kind === 'chunked') this.takeChunked(chunk);
      else if (this.framing.kind === 'length') {
        const body = chunk.length > this.framing.left ? chunk.subarray(0, this.framing.left) : chunk;
        this.framing.left -= body.length;
        this.push(body);
        if (this.framing.left === 0) this.finish();
      } else this.push(chunk);
    } catch (error) {
      this.fail(error as Error);
      this.socket.destroy();
    }
    if (this.queued > HIGH_WATER_BYTES) this.socket.pause();
    // Only what went out wakes the reader: bytes still gathering in the slab would wake it for nothing.
    if (this.queue.length > 0) this.signal();
  }

  private takeChunked(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length && !this.complete) {
      if (this.chunkState === 'data') {
        const take = Math.min(this.chunkLeft, chunk.length - at);
        this.push(at === 0 && take === chunk.length ? chunk : chunk.subarray(at, at + take));
        at += take;
        this.chunkLeft -= take;
        if (this.chunkLeft === 0) this.chunkState = 'data-end';
        continue;
      }
      // A framing line: the chunk size (with extensions), the CRLF after data, or a trailer.
      const newline = chunk.indexOf(10, at);
      const end = newline < 0 ? chunk.length : newline + 1;
      this.line += chunk.toString('latin1', at, end);
      at = end;
      if (this.line.length > 4096) throw new Error('a chunked-coding line is longer than 4096 bytes');
      if (newline < 0) return;
      const line = this.line.replace(/\r?\n$/, '');
      this.line = '';
      if (this.chunkState === 'data-end') {
        if (line !== '') throw new Error('a chunk of the body does not end where its size says');
        this.chunkState = 'size';
      } else if (this.chunkState === 'size') {
        const size = /^([0-9a-fA-F]{1,12})\s*(;.*)?$/.exec(line);
        if (!size) throw new Error(`a chunk size line reads "${line.slice(0, 40)}"`);
        this.chunkLeft = parseInt(size[1]!, 16);
        this.chunkState = this.chunkLeft === 0 ? 'trailer' : 'data';
      } else if (line === '') this.finish();
    }
  }

  private push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (chunk.length >= SMALL_CHUNK_BYTES) {
      this.flushSlab();
      this.enqueue(chunk);
      return;
    }
    this.slab ??= Buffer.allocUnsafeSlow(SLAB_BYTES);
    for (let at = 0; at < chunk.length; ) {
      const take = Math.min(chunk.length - at, SLAB_BYTES - this.slabUsed);
      chunk.copy(this.slab, this.slabUsed, at, at + take);
      this.slabUsed += take;
      at += take;
      if (this.slabUsed === SLAB_BYTES) {
        // Full: it goes out as it is (a buffer of its own, which a decode worker can take over).
        this.enqueue(this.slab);
        this.slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
        this.slabUsed = 0;
      }
    }
    if (this.slabUsed > 0 && !this.flushQueued) {
      // After this turn's reads (setImmediate runs once the loop has polled every socket).
      this.flushQueued = true;
      setImmediate(() => {
        this.flushQueued = false;
        this.flushSlab();
        this.signal();
      });
    }
  }

  /** What the slab holds so far goes out as a copy of its own; the slab is used again. */
  private flushSlab(): void {
    if (this.slabUsed === 0) return;
    const part = Buffer.allocUnsafeSlow(this.slabUsed);
    this.slab!.copy(part, 0, 0, this.slabUsed);
    this.slabUsed = 0;
    this.enqueue(part);
  }

  private enqueue(chunk: Buffer): void {
    this.queue.push(chunk);
    this.queued += chunk.length;
  }

  private finish(): void {
    this.flushSlab();
    this.complete = true;
    // Connection: close: the server closes too; nothing more is read from this socket.
    this.socket.destroy();
    this.signal();
  }

  private fail(error: Error): void {
    // What came before the failure is still the body's: the caller resumes after it.
    if (!this.failure) this.flushSlab();
    this.failure ??= error;
    this.signal();
  }

  private signal(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
