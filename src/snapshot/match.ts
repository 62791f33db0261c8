import { readFile } from 'node:fs/promises';
import { MacvmError, isMacvmError, messageOf } from '../errors.js';
import type { Artifact } from '../shared/results.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { snapshotArtifactPaths, writeArtifact } from './artifacts.js';
import { DEFAULT_PATH_TEMPLATE, resolveBaselinePath, safeRelative } from './baseline-path.js';
import { allowedDiffPixels, comparePngs, type CompareResult, type Rect } from './compare.js';
import { describeEnvironment, environmentDifferences, environmentKey, parseSidecar, type SnapshotEnvironment, type SnapshotSidecar } from './environment.js';
import { decodePng, encodePng, readPngHeader, toPngBytes, type PngSource } from './png.js';
import type { UpdateMode } from './update-mode.js';
import { assertOptions, type Rule } from '../util/validate.js';

export interface ImageSnapshotOptions {
  /** Baseline name; default: the test's full name + a per-test counter. */
  name?: string;
  /** pixelmatch per-pixel colour distance, 0–1. Default 0.1. */
  threshold?: number;
  /** Differing pixels allowed. With maxDiffPixelRatio too, the stricter wins. Default 0. */
  maxDiffPixels?: number;
  /** Share of differing pixels allowed, 0–1. */
  maxDiffPixelRatio?: number;
  /** Rectangles painted out on both sides before comparing (clocks, cursors, avatars). */
  masks?: Rect[];
  /** Count anti-aliased pixels as differences. Default false (anti-aliasing is tolerated). */
  includeAA?: boolean;
  /** See DEFAULT_PATH_TEMPLATE and resolveBaselinePath for the tokens. */
  pathTemplate?: string;
  /** Overrides (field by field) the environment set with setSnapshotEnvironment. */
  environment?: SnapshotEnvironment;
  /** Overrides the update mode (-u, MACVM_UPDATE_SNAPSHOTS). */
  update?: UpdateMode;
  /**
   * Refuse to compare against a baseline whose sidecar records another environment
   * (MACVM_SNAPSHOT_ENV_MISMATCH), as macvm did before pixels decided. Default false: the
   * pixels are compared and the environment difference only explains the outcome.
   */
  strictEnvironment?: boolean;
}

/** Everything the matcher learned from vitest and the process, resolved. */
export interface SnapshotRun {
  /** Absolute path of the spec file. */
  specPath: string;
  root: string;
  /** Sanitised snapshot name. */
  name: string;
  reportsDir: string;
  update: UpdateMode;
  environment: SnapshotEnvironment;
  /** Injectable for tests of interrupted writes; default writeFileAtomic. */
  writeFile?: (path: string, data: Buffer | string) => Promise<void>;
  now?: () => Date;
}

export type SnapshotStatus = 'matched' | 'written' | 'updated' | 'failed';

export interface SnapshotOutcome {
  pass: boolean;
  status: SnapshotStatus;
  baselinePath: string;
  /** For the test's report: set on failure, whenever a baseline or sidecar was written, and on a match across environments. */
  artifact?: Artifact;
  /** Set when the baseline came from another environment and the pixels still matched. */
  environmentNote?: string;
  /** The coded error of a failure. */
  error?: MacvmError;
  compare?: CompareResult;
}

/**
 * Compares an image with its baseline, writing baselines and artifacts as the update mode
 * says. Errors about the input (not a PNG, bad options) are thrown; failures of the
 * comparison come back as `error` on the outcome, together with their artifact.
 *
 * Pixels decide; the environment explains. A baseline whose sidecar records another
 * environment (a new kernel build, another GPU) is still compared, because such a change
 * often renders the same picture: within tolerance it passes with a note, beyond it the
 * mismatch names the environment difference. `strictEnvironment` restores the refusal to
 * compare (MACVM_SNAPSHOT_ENV_MISMATCH).
 *
 * A corrupt baseline is replaced only by an explicit update ('changed' or 'all'); in
 * 'missing' and 'none' it is an error and the file is not touched, so a broken baseline is
 * never papered over by a run that did not ask to update.
 */
export async function matchImageSnapshot(input: unknown, options: ImageSnapshotOptions, run: SnapshotRun): Promise<SnapshotOutcome> {
  validateOptions(options);
  const actual = toPngBytes(input);
  const environment = run.environment;
  const template = options.pathTemplate ?? DEFAULT_PATH_TEMPLATE;
  const baselinePath = resolveBaselinePath(template, {
    specPath: run.specPath,
    root: run.root,
    name: run.name,
    envKey: environmentKey(environment),
    provider: environment.provider,
  });
  const sidecarPath = `${baselinePath}.json`;
  const corrupt: PngSource = {
    code: 'MACVM_SNAPSHOT_CORRUPT',
    label: `baseline ${baselinePath}`,
    hint: 'Restore it from version control, or re-record it with -u (MACVM_UPDATE_SNAPSHOTS=changed); it was left untouched.',
  };
  const artifacts = snapshotArtifactPaths(run.reportsDir, safeRelative(run.root, run.specPath), run.name);
  const write = run.writeFile ?? ((path: string, data: Buffer | string) => writeFileAtomic(path, data));
  const label = `Image "${run.name}"`;

  const sidecarText = () => {
    const sidecar: SnapshotSidecar = { ...environment, takenAt: (run.now?.() ?? new Date()).toISOString() };
    return `${JSON.stringify(sidecar, null, 2)}\n`;
  };
  /** Writes baseline files one by one, each atomically, so an interruption leaves every file whole. */
  const persist = async (files: Array<[string, Buffer | string]>) => {
    for (const [path, data] of files) {
      try {
        await write(path, data);
      } catch (error) {
        const what = path === sidecarPath ? `the sidecar ${path} of baseline ${baselinePath}` : `baseline ${path}`;
        throw new MacvmError('MACVM_SNAPSHOT_WRITE_FAILED', `Writing ${what} failed: ${messageOf(error)}.`, {
          hint: 'The previous baseline, if there was one, is intact. Check that the directory is writable and the disk has space.',
          cause: error,
        });
      }
    }
  };

  const writeBaseline = async (status: 'written' | 'updated', previous?: Buffer): Promise<SnapshotOutcome> => {
    decodePng(actual); // never keep a baseline that cannot be read back
    await persist([[baselinePath, actual], [sidecarPath, sidecarText()]]);
    const { width, height } = decodeSize(actual);
    await writeArtifact(artifacts.actual, actual);
    if (previous) await writeArtifact(artifacts.expected, previous);
    const artifact = artifactOf(run, artifacts, { expected: Boolean(previous), diff: false, diffPixels: 0, diffRatio: 0, width, height });
    artifact.snapshot!.baseline = { status, path: safeRelative(run.root, baselinePath) };
    return { pass: true, status, baselinePath, artifact };
  };

  /** expected / actual / diff pictures of a comparison, for the report. */
  const comparisonArtifact = async (baseline: Buffer, result: CompareResult): Promise<Artifact> => {
    await writeArtifact(artifacts.expected, baseline);
    await writeArtifact(artifacts.actual, actual);
    // Diffs are throwaway artifacts: no filter pass and fast compression over the smallest file.
    if (result.diff) await writeArtifact(artifacts.diff, encodePng(result.diff, { level: 1, filter: 'none' }));
    return artifactOf(run, artifacts, { expected: true, diff: Boolean(result.diff), diffPixels: result.diffPixels, diffRatio: result.diffRatio, width: result.width, height: result.height });
  };

  /**
   * The pixels matched a baseline from another environment: a pass that says so. Under
   * 'changed' the sidecar alone is brought up to date; the PNG bytes stay as they are, so a
   * kernel or driver bump does not churn committed images that still render the same. The
   * refreshed sidecar's takenAt is this run's: when this environment was seen to render it.
   */
  const explainedMatch = async (baseline: Buffer, result: CompareResult, drift: EnvironmentDrift): Promise<SnapshotOutcome> => {
    const refresh = run.update === 'changed';
    if (refresh) await persist([[sidecarPath, sidecarText()]]);
    const note = `baseline from ${describeEnvironment(drift.recorded)}, pixels match (differs in ${drift.fields.join(', ')})${refresh ? `; sidecar updated to ${describeEnvironment(environment)}` : ''}`;
    const artifact = await comparisonArtifact(baseline, result);
    artifact.snapshot!.environmentNote = note;
    if (refresh) artifact.snapshot!.baseline = { status: 'updated', path: `${safeRelative(run.root, baselinePath)}.json` };
    return { pass: true, status: refresh ? 'updated' : 'matched', baselinePath, artifact, environmentNote: note, compare: result };
  };

  let baseline: Buffer;
  try {
    baseline = await readFile(baselinePath);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    if (run.update === 'none') {
      await writeArtifact(artifacts.actual, actual);
      const { width, height } = decodeSize(actual);
      return failure(baselinePath, artifactOf(run, artifacts, { expected: false, diff: false, diffPixels: 0, diffRatio: 0, width, height }), new MacvmError(
        'MACVM_SNAPSHOT_MISSING',
        `${label} has no baseline at ${baselinePath}, and the update mode is 'none' (the default when CI is set), so none was written.`,
        { hint: 'Record baselines locally (or with MACVM_UPDATE_SNAPSHOTS=missing) and commit them.', details: { baselinePath, actual: artifacts.actual } },
      ));
    }
    return writeBaseline('written');
  }

  if (run.update === 'all') return writeBaseline('updated', baseline);

  try {
    readPngHeader(baseline, corrupt);
  } catch (error) {
    if (run.update === 'changed') return writeBaseline('updated');
    throw error;
  }

  const drift = environmentDrift(await readSidecar(sidecarPath), environment);
  if (drift && options.strictEnvironment) {
    if (run.update === 'changed') return writeBaseline('updated', baseline);
    const mismatch = describeDrift(drift, environment);
    await writeArtifact(artifacts.actual, actual);
    await writeArtifact(artifacts.expected, baseline);
    const { width, height } = decodeSize(actual);
    const artifact = artifactOf(run, artifacts, { expected: true, diff: false, diffPixels: 0, diffRatio: 0, width, height });
    artifact.snapshot!.environmentMismatch = mismatch;
    return failure(baselinePath, artifact, new MacvmError(
      'MACVM_SNAPSHOT_ENV_MISMATCH',
      `${label} was not compared: ${mismatch}. strictEnvironment is set, so pixels from different environments are not compared.`,
      {
        hint: 'Re-record with -u on this environment, keep per-environment baselines with {env} in pathTemplate, or drop strictEnvironment to let the pixels decide.',
        details: { baselinePath, fields: drift.fields, baseline: drift.recorded, current: environment },
      },
    ));
  }

  let result: CompareResult;
  try {
    result = await comparePngs(baseline, actual, { threshold: options.threshold, includeAA: options.includeAA, masks: options.masks, diffImage: true }, { expected: corrupt });
  } catch (error) {
    if (isMacvmError(error, 'MACVM_SNAPSHOT_CORRUPT') && run.update === 'changed') return writeBaseline('updated');
    throw error;
  }

  const total = result.width * result.height;
  const allowed = allowedDiffPixels(total, options);
  if (!result.sizeMismatch && result.diffPixels <= allowed) {
    return drift ? explainedMatch(baseline, result, drift) : { pass: true, status: 'matched', baselinePath, compare: result };
  }
  if (run.update === 'changed') return { ...(await writeBaseline('updated', baseline)), compare: result };

  const artifact = await comparisonArtifact(baseline, result);
  const where = [`expected: ${artifacts.expected}`, `actual:   ${artifacts.actual}`, ...(result.diff ? [`diff:     ${artifacts.diff}`] : [])].join('\n  ');
  const headline = result.sizeMismatch
    ? `${label} is ${result.sizeMismatch.actual.width}×${result.sizeMismatch.actual.height} but its baseline is ${result.sizeMismatch.expected.width}×${result.sizeMismatch.expected.height}.`
    : `${label} differs from its baseline: ${count(result.diffPixels)} pixels (${percent(result.diffRatio)}) beyond threshold ${options.threshold ?? 0.1} (allowed: ${describeAllowed(options, allowed)}).`;
  // The pixels decided; the environment difference, if any, is the likeliest explanation, so it is named.
  const mismatch = drift ? describeDrift(drift, environment) : undefined;
  if (mismatch) artifact.snapshot!.environmentMismatch = mismatch;
  return {
    ...failure(baselinePath, artifact, new MacvmError('MACVM_SNAPSHOT_MISMATCH', [headline, ...(mismatch ? [mismatch] : []), where].join('\n  '), {
      hint: mismatch
        ? 'If the change is intended, or comes from the new environment, re-run with -u (or MACVM_UPDATE_SNAPSHOTS=changed) to accept it; to keep one baseline per environment, put {env} in pathTemplate.'
        : 'If the change is intended, re-run with -u (or MACVM_UPDATE_SNAPSHOTS=changed) to accept it.',
      details: { baselinePath, diffPixels: result.diffPixels, diffRatio: result.diffRatio, allowed, ...artifacts, ...(drift ? { fields: drift.fields, baseline: drift.recorded, current: environment } : {}) },
    })),
    compare: result,
  };
}

/** The baseline's recorded environment and the fields in which this run differs from it. */
interface EnvironmentDrift {
  recorded: SnapshotSidecar;
  fields: string[];
}

function environmentDrift(recorded: SnapshotSidecar | undefined, environment: SnapshotEnvironment): EnvironmentDrift | undefined {
  const fields = recorded ? environmentDifferences(recorded, environment) : [];
  return recorded && fields.length > 0 ? { recorded, fields } : undefined;
}

/** "baseline taken on X, this run is Y (differs in guestBuild)" */
function describeDrift(drift: EnvironmentDrift, environment: SnapshotEnvironment): string {
  return `baseline taken on ${describeEnvironment(drift.recorded)}, this run is ${describeEnvironment(environment)} (differs in ${drift.fields.join(', ')})`;
}

function failure(baselinePath: string, artifact: Artifact, error: MacvmError): SnapshotOutcome {
  return { pass: false, status: 'failed', baselinePath, artifact, error };
}

async function readSidecar(path: string): Promise<SnapshotSidecar | undefined> {
  try {
    return parseSidecar(await readFile(path, 'utf8'));
  } catch {
    return undefined;
  }
}

function decodeSize(png: Buffer): { width: number; height: number } {
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

function artifactOf(
  run: SnapshotRun,
  paths: ReturnType<typeof snapshotArtifactPaths>,
  facts: { expected: boolean; diff: boolean; diffPixels: number; diffRatio: number; width: number; height: number },
): Artifact {
  const rel = (path: string) => safeRelative(run.reportsDir, path);
  return {
    kind: 'snapshot',
    name: run.name,
    path: rel(paths.actual),
    contentType: 'image/png',
    snapshot: {
      name: run.name,
      actual: rel(paths.actual),
      ...(facts.expected ? { expected: rel(paths.expected) } : {}),
      ...(facts.diff ? { diff: rel(paths.diff) } : {}),
      diffPixels: facts.diffPixels,
      diffRatio: facts.diffRatio,
      width: facts.width,
      height: facts.height,
    },
  };
}

function count(n: number): string {
  return n.toLocaleString('en-US');
}

function percent(ratio: number): string {
  const value = ratio * 100;
  return `${value >= 0.01 || value === 0 ? value.toFixed(2) : value.toPrecision(2)} %`;
}

function describeAllowed(options: ImageSnapshotOptions, allowed: number): string {
  const parts = [`${count(allowed)} pixels`];
  if (options.maxDiffPixelRatio !== undefined) parts.push(`${+(options.maxDiffPixelRatio * 100).toFixed(4)} %`);
  return parts.join(' / ');
}

/** Every option toMatchImageSnapshot takes; a typo ("treshold") is an error, not a silent default. */
const OPTIONS_RULE: Rule = {
  kind: 'object',
  keys: {
    name: { kind: 'string', nonEmpty: true },
    threshold: { kind: 'number', min: 0, max: 1 },
    maxDiffPixels: { kind: 'integer', min: 0 },
    maxDiffPixelRatio: { kind: 'number', min: 0, max: 1 },
    masks: {
      kind: 'array',
      item: {
        kind: 'object',
        required: ['x', 'y', 'width', 'height'],
        keys: {
          x: { kind: 'number', min: Number.NEGATIVE_INFINITY },
          y: { kind: 'number', min: Number.NEGATIVE_INFINITY },
          width: { kind: 'number', min: 0 },
          height: { kind: 'number', min: 0 },
        },
      },
    },
    includeAA: { kind: 'boolean' },
    pathTemplate: { kind: 'string', nonEmpty: true },
    environment: { kind: 'any' },
    update: { kind: 'enum', values: ['missing', 'changed', 'all', 'none'] },
    strictEnvironment: { kind: 'boolean' },
  },
};

function validateOptions(options: ImageSnapshotOptions): void {
  assertOptions(options, OPTIONS_RULE, 'toMatchImageSnapshot options');
}
