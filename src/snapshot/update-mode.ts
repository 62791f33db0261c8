import { MacvmError } from '../errors.js';

/**
 * When baselines are written:
 * - 'missing': write baselines that do not exist; a mismatch fails (the local default)
 * - 'changed': also rewrite baselines that mismatch or are corrupt (vitest -u); a baseline from another
 *              environment whose pixels match gets only its sidecar rewritten
 * - 'all':     rewrite every baseline compared
 * - 'none':    never write; a missing baseline fails (the default when CI is set)
 */
export type UpdateMode = 'missing' | 'changed' | 'all' | 'none';

export const UPDATE_MODES: readonly UpdateMode[] = ['missing', 'changed', 'all', 'none'];

/** vitest's own snapshot setting, as SnapshotState._updateSnapshot holds it. */
export type VitestUpdateSnapshot = 'all' | 'new' | 'none';

export interface UpdateModeSources {
  /** The option passed to the matcher. */
  explicit?: UpdateMode;
  /** process.env (MACVM_UPDATE_SNAPSHOTS, CI). */
  env?: NodeJS.ProcessEnv;
  /** `expect.getState().snapshotState._updateSnapshot`, when running under vitest. */
  vitest?: VitestUpdateSnapshot;
  /** The project's config (snapshots.update), if the runner passed one. */
  configured?: UpdateMode;
}

/**
 * Which update mode applies, strongest first: the matcher option, MACVM_UPDATE_SNAPSHOTS,
 * vitest's -u ('all' → 'changed'; vitest itself sets 'none' on CI and 'new' otherwise), the
 * config, then CI ? 'none' : 'missing'.
 */
export function resolveUpdateMode(sources: UpdateModeSources = {}): UpdateMode {
  const env = sources.env ?? process.env;
  if (sources.explicit !== undefined) return checked(sources.explicit, 'the update option');
  const fromEnv = env.MACVM_UPDATE_SNAPSHOTS?.trim();
  if (fromEnv) return checked(fromEnv, 'MACVM_UPDATE_SNAPSHOTS');
  if (sources.vitest === 'all') return 'changed';
  if (sources.configured !== undefined) return checked(sources.configured, 'snapshots.update');
  if (sources.vitest === 'none') return 'none';
  if (sources.vitest === 'new') return 'missing';
  return isCi(env) ? 'none' : 'missing';
}

function isCi(env: NodeJS.ProcessEnv): boolean {
  const ci = env.CI;
  return ci !== undefined && ci !== '' && ci !== '0' && ci.toLowerCase() !== 'false';
}

function checked(value: string, from: string): UpdateMode {
  if ((UPDATE_MODES as readonly string[]).includes(value)) return value as UpdateMode;
  throw new MacvmError('MACVM_CONFIG_INVALID', `${from} is "${value}", which is not an update mode.`, {
    hint: `Use one of ${UPDATE_MODES.join(', ')}.`,
  });
}
