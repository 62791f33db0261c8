import { resolve } from 'node:path';
import { DEFAULT_PATH_TEMPLATE } from '../snapshot/baseline-path.js';
import { defaultProviderName } from '../vm/providers.js';
import { currentSession } from '../vm/session.js';
import type { RunContext } from './run-context.js';

/**
 * The context when specs run under plain `vitest` without the macvm preset: no reaper,
 * no progress display, built-in defaults. `macvm test` (or the preset) gives the real one.
 */
export function defaultRunContext(env: NodeJS.ProcessEnv = process.env): RunContext {
  const session = currentSession(env);
  return {
    sessionId: session.id,
    sessionPid: session.pid,
    reportsDir: resolve(env.MACVM_REPORTS_DIR ?? 'reports'),
    provider: env.MACVM_PROVIDER ?? defaultProviderName(),
    defaults: {},
    slots: { vz: 2, tart: 2, qemu: 2, ssh: 4, orchard: 4 },
    timeouts: { ready: 120_000, stop: 10_000, slot: 30 * 60_000 },
    images: {},
    snapshots: { pathTemplate: DEFAULT_PATH_TEMPLATE, threshold: 0.1, strictEnvironment: false },
  };
}
