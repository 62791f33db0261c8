/**
 * Every failure macvm reports on purpose is a MacvmError with a stable `code`.
 * Codes are part of the public API (documented in the README): scripts and CI
 * match on them, so never rename one; add new ones instead.
 */
export const ERROR_CODES = {
  // configuration and input
  MACVM_CONFIG_INVALID: 'The macvm config (or an option passed in code) has a bad key or value.',
  MACVM_BAD_ARGUMENT: 'A function or CLI verb was called with an argument it cannot use.',
  // host and tools
  MACVM_HOST_TOOL_MISSING: 'A host program macvm needs (qemu, ssh-keygen, mkfs.ext4, ...) is not installed.',
  MACVM_PROVIDER_UNAVAILABLE: 'The chosen provider cannot run on this host.',
  MACVM_NATIVE_ADDON_MISSING: 'The Virtualization.framework addon is not built or cannot load.',
  MACVM_ENTITLEMENT_MISSING: 'The vmhost binary lacks the com.apple.security.virtualization entitlement.',
  // images
  MACVM_IMAGE_NOT_FOUND: 'No image of that name exists under MACVM_HOME.',
  MACVM_IMAGE_CORRUPT: 'An image exists but its metadata or disk is unreadable.',
  MACVM_IMAGE_BUILD_FAILED: 'Building an image failed.',
  MACVM_IPSW_INVALID: 'A macOS restore image (IPSW) could not be loaded or is unsupported.',
  MACVM_INSTALL_FAILED: 'Installing macOS from an IPSW failed.',
  MACVM_IMAGE_FORMAT_UNSUPPORTED: 'A registry image is in a format macvm does not read (Tart disk.v1, an unknown media type, another provider\'s image).',
  MACVM_DISK_SPACE: 'Not enough free disk space for the image being pulled or built.',
  // registries
  MACVM_REGISTRY_AUTH_FAILED: 'The OCI registry refused the credentials (or asked for some and none were found).',
  MACVM_REGISTRY_ERROR: 'The OCI registry could not be reached or answered with an error.',
  // lifecycle
  MACVM_CLONE_FAILED: 'Making the copy-on-write clone of an image failed.',
  MACVM_BOOT_FAILED: 'The VM process failed to start or exited during boot.',
  MACVM_DEADLINE_EXCEEDED: 'The VM did not become ready before its deadline.',
  MACVM_VM_NOT_FOUND: 'No VM with that id is known.',
  MACVM_VM_STOPPED: 'The VM stopped (or crashed) while it was in use.',
  MACVM_STOP_FAILED: 'The VM did not stop cleanly.',
  MACVM_REAPER_FAILED: 'The reaper (the watchdog that removes a killed run\'s VMs) could not start or be reached.',
  MACVM_SLOT_LIMIT: 'The host-wide limit of running VMs was reached (macOS allows two macOS guests per host).',
  MACVM_SLOT_TIMEOUT: 'Waited too long for a free VM slot.',
  MACVM_INTERRUPTED: 'The run was interrupted (Ctrl-C, SIGTERM) or its runner died, so the suite stopped.',
  MACVM_QMP_ERROR: 'QEMU refused or failed a QMP command.',
  MACVM_ADDRESS_NOT_FOUND: 'The guest did not get a network address.',
  // guest session
  MACVM_SSH_CONNECT_FAILED: 'Could not open an SSH session to the guest.',
  MACVM_HOST_KEY_MISMATCH: 'The guest presented a host key other than the pinned one.',
  MACVM_EXEC_FAILED: 'A command in the guest exited non-zero (with `reject: true`).',
  MACVM_EXEC_TIMEOUT: 'A command in the guest ran past its timeout and was killed.',
  MACVM_TRANSFER_FAILED: 'A file upload or download failed.',
  MACVM_FORWARD_FAILED: 'A port forward could not be set up.',
  MACVM_SESSION_CLOSED: 'The guest session was used after it closed.',
  // browsers, simulator, GPU
  MACVM_DRIVER_MISSING: 'The WebDriver binary (safaridriver, chromedriver) is not in the guest.',
  MACVM_DRIVER_NOT_ENABLED: 'safaridriver is present but remote automation is not enabled.',
  MACVM_DRIVER_CRASHED: 'The WebDriver process exited or never answered /status.',
  MACVM_SIMULATOR_ERROR: 'xcrun simctl failed or its output was unexpected.',
  MACVM_GPU_REQUIRED: 'The suite requires GPU rendering but the guest renders in software.',
  MACVM_NOT_SUPPORTED: 'The provider or guest cannot do what was asked (e.g. a screenshot on a headless ssh host).',
  // snapshots
  MACVM_SNAPSHOT_MISMATCH: 'The image differs from its baseline beyond the allowed tolerance.',
  MACVM_SNAPSHOT_MISSING: 'No baseline exists and the update mode forbids writing one.',
  MACVM_SNAPSHOT_CORRUPT: 'A baseline file is not a readable PNG.',
  MACVM_SNAPSHOT_ENV_MISMATCH: 'The baseline was taken in another environment (OS build, GPU, display).',
  MACVM_PNG_INVALID: 'The image handed in is not a PNG.',
  MACVM_SNAPSHOT_WRITE_FAILED: 'Writing a baseline failed; the previous baseline (if any) is left intact.',
  MACVM_SCREEN_UNSTABLE: 'The screen kept changing: no two consecutive captures matched before the timeout.',
  // bench and reports
  MACVM_BENCH_REGRESSION: 'A benchmark regressed beyond the allowed percentage.',
  MACVM_BENCH_INVALID: 'A benchmark definition or history file is invalid.',
  MACVM_REPORT_FAILED: 'Writing the report failed.',
} as const;

export type MacvmErrorCode = keyof typeof ERROR_CODES;

export interface MacvmErrorOptions {
  /** What the user should do next; printed under the message. */
  hint?: string;
  cause?: unknown;
  /** Structured facts for scripts and reports (never secrets). */
  details?: Record<string, unknown>;
}

export class MacvmError extends Error {
  /**
   * "MacvmError [MACVM_IMAGE_NOT_FOUND]", in the manner of Node's own coded errors, so the code
   * is on the line a person reads: vitest prints `name: message`, and its serialized-error
   * block shows the cause's fields (an ENOENT) rather than ours. Match on `code`, not on this.
   */
  override readonly name: string;
  readonly code: MacvmErrorCode;
  readonly hint?: string;
  readonly details: Record<string, unknown>;

  constructor(code: MacvmErrorCode, message: string, options: MacvmErrorOptions = {}) {
    super(options.hint ? `${message}\n  → ${options.hint}` : message, { cause: options.cause });
    this.name = `MacvmError [${code}]`;
    this.code = code;
    this.hint = options.hint;
    this.details = options.details ?? {};
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, code: this.code, message: this.message, hint: this.hint, details: this.details };
  }
}

export function isMacvmError(error: unknown, code?: MacvmErrorCode): error is MacvmError {
  return error instanceof MacvmError && (code === undefined || error.code === code);
}

/** The message of anything thrown, for wrapping foreign errors. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
