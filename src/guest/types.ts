/** The contract of a connection into a guest (implemented on ssh2 in session.ts). */
export interface HostForwardOptions {
  guestPort?: number;
  hostHost?: string;
  /**
   * Called when a connection the guest made cannot reach the host port (nothing listens
   * there: ECONNREFUSED); the guest's side is closed either way.
   */
  onHostUnreachable?: (error: Error) => void;
}

export interface ExecOptions {
  /** Environment variables for the command (exported in the remote shell, so no AcceptEnv is needed). */
  env?: Record<string, string>;
  /** Working directory in the guest. */
  cwd?: string;
  /** Kills the command (and rejects with MACVM_EXEC_TIMEOUT) after this many ms. */
  timeoutMs?: number;
  /** Data written to the command's stdin, which is then closed; a stream is piped in, and its end closes stdin. */
  stdin?: string | Buffer | NodeJS.ReadableStream;
  onStdout?: (chunk: string) => void;
  onStderr?: (chunk: string) => void;
  /** Reject with MACVM_EXEC_FAILED when the exit code is not 0 (default true, as execa). */
  reject?: boolean;
  signal?: AbortSignal;
}

export interface ExecResult {
  command: string;
  stdout: string;
  stderr: string;
  /** null when the command was ended by a signal. */
  exitCode: number | null;
  signal: string | null;
  durationMs: number;
  failed: boolean;
  timedOut: boolean;
}

export interface PortForward {
  /** For a local forward: the port on 127.0.0.1 of the host. For a reverse forward: the port in the guest. */
  readonly port: number;
  close(): Promise<void>;
}

export type ShellTemplate = (strings: TemplateStringsArray, ...values: unknown[]) => Promise<ExecResult>;

export interface GuestSession {
  readonly host: string;
  readonly port: number;
  exec(command: string, options?: ExecOptions): Promise<ExecResult>;
  /** sh`ls ${dir}`: interpolations are quoted for a POSIX shell, never spliced raw. */
  readonly sh: ShellTemplate;
  /** With options: `vm.shWith({ cwd: '/tmp' })\`ls\``. */
  shWith(options: ExecOptions): ShellTemplate;
  /** Uploads a file or a directory (recursively) over SFTP. */
  upload(localPath: string, remotePath: string): Promise<void>;
  /** Downloads a file or a directory (recursively) over SFTP. */
  download(remotePath: string, localPath: string): Promise<void>;
  writeFile(remotePath: string, data: string | Buffer, options?: { mode?: number }): Promise<void>;
  readFile(remotePath: string): Promise<Buffer>;
  /** guest port → 127.0.0.1:<random> on the host. */
  forwardGuestPort(guestPort: number, options?: { guestHost?: string; localPort?: number }): Promise<PortForward>;
  /** A guest port (random when 0) → a host port on 127.0.0.1 (reverse forward). */
  forwardHostPort(hostPort: number, options?: HostForwardOptions): Promise<PortForward>;
  readonly closed: boolean;
  close(): Promise<void>;
}
