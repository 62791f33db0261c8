import { join, resolve } from 'node:path';
import { DEFAULT_PATH_TEMPLATE } from '../snapshot/baseline-path.js';
import { DEFAULTS } from '../vm/defaults.js';
import { defaultProviderName, defaultSlots } from '../vm/registry.js';
import { currentSession } from '../vm/session.js';
import type { RunContext } from './run-context.js';

/**
 * The context when specs run under plain `vitest` without the macvm preset: no reaper,
 * no progress display, built-in defaults. `macvm test` (or the preset) gives the real one.
 */
export function defaultRunContext(env: NodeJS.ProcessEnv = process.env): RunContext {
  const session = currentSession(env);
  const reportsDir = resolve(env.MACVM_REPORTS_DIR ?? 'reports');
  return {
    sessionId: session.id,
    sessionPid: session.pid,
    reportsDir,
    provider: env.MACVM_PROVIDER ?? defaultProviderName(),
    defaults: {},
    slots: defaultSlots(),
    timeouts: { ready: DEFAULTS.readyTimeoutMs, stop: DEFAULTS.stopGracefulMs, slot: DEFAULTS.slotTimeoutMs },
    images: {},
    snapshots: { pathTemplate: DEFAULT_PATH_TEMPLATE, threshold: DEFAULTS.snapshotThreshold, strictEnvironment: false },
    bench: { history: join(reportsDir, 'bench', 'history.jsonl') },
    providers: {},
  };
}
