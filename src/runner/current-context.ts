import { inject } from 'vitest';
import { defaultRunContext } from './default-context.js';
import { RUN_CONTEXT_KEY, type RunContext } from './run-context.js';

/** In a test worker: the context `macvm test` provided, or built-in defaults under plain vitest. */
export function currentRunContext(): RunContext {
  try {
    return inject(RUN_CONTEXT_KEY) ?? defaultRunContext();
  } catch {
    return defaultRunContext();
  }
}
