/**
 * The numbers macvm uses when nothing says otherwise, in one place: the config resolver, the
 * default run context (specs run by plain vitest), startMacVM(), the CLI and the README's
 * Configuration section all read them from here. Per-provider defaults (slots, connect timeout)
 * live in each provider's definition and are collected by ./registry.ts.
 */
export const DEFAULTS = {
  /** vCPUs of a VM whose suite and config name none. */
  cpus: 2,
  /** Guest RAM in MiB when nothing names any. */
  memoryMiB: 1024,
  /** Clone → boot → SSH → ready, for one VM: TCG and first boots of macOS images are slow. */
  readyTimeoutMs: 120_000,
  /** Graceful power-down before the VM process is stopped hard. */
  stopGracefulMs: 10_000,
  /** How long a suite waits for a free slot before MACVM_SLOT_TIMEOUT. */
  slotTimeoutMs: 30 * 60_000,
  /** Per-pixel colour distance (0–1) under which screenshot pixels count as equal. */
  snapshotThreshold: 0.1,
} as const;
