/**
 * macvm's public API, for specs: `import { withMacVM, expect } from 'macvm'`.
 * Importing it also registers the `toMatchImageSnapshot` matcher.
 *
 * The reference below is kept in index.d.ts (preserve): vm.browser() and vm.safari() are typed
 * with webdriverio's global `WebdriverIO` namespace, which a project compiling against the
 * package would otherwise not load (TS2503, or `any` under skipLibCheck).
 */
/// <reference types="webdriverio" preserve="true" />
import './fixtures/image-snapshot.js';

export { withMacVM, type WithMacVMOptions } from './fixtures/with-macvm.js';
export { macvmTest } from './fixtures/vm-fixture.js';
export { benchMacVM, runBenchInMacVM, type BenchMacVMOptions } from './fixtures/bench-macvm.js';
export { startMacVM, type StartMacVMOptions } from './machine/start.js';
export { MacVM, type RestartTimes, type VmFacts } from './machine/macvm.js';
export { forAll, forCommand, forLog, forSsh, type WaitStrategy, type WaitContext } from './machine/wait.js';
export { Deadline } from './shared/deadline.js';
export { MacvmError, ERROR_CODES, isMacvmError, type MacvmErrorCode } from './errors.js';
export type { ExecOptions, ExecResult, GuestSession, PortForward } from './guest/types.js';
export type { Image, Provider, ProviderName, Clone, RunningVM } from './vm/types.js';
export { toMatchImageSnapshot } from './fixtures/image-snapshot.js';
export { configureImageSnapshots, setSnapshotEnvironment, type SnapshotEnvironment } from './snapshot/index.js';
export { captureStable } from './guest/screen.js';
export { fullPageScreenshot } from './guest/full-page-screenshot.js';
export type { Simulator, SimulatorOptions } from './guest/simulator.js';
export type { GpuInfo } from './guest/gpu.js';
export { expect, it, test, describe, beforeAll, beforeEach, afterAll, afterEach } from 'vitest';
