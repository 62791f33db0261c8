/** The snapshot module's public surface (re-exported by 'macvm' as the lead sees fit). */
export { matchImageSnapshot, type ImageSnapshotOptions, type SnapshotOutcome, type SnapshotRun, type SnapshotStatus } from './match.js';
export { comparePngs, compareImages, allowedDiffPixels, type CompareOptions, type CompareResult, type Rect } from './compare.js';
export { decodePng, encodePng, readPngHeader, toPngBytes, type RgbaImage } from './png.js';
export { setSnapshotEnvironment, currentSnapshotEnvironment, type SnapshotEnvironment, type SnapshotSidecar } from './environment.js';
export { resolveUpdateMode, UPDATE_MODES, type UpdateMode } from './update-mode.js';
export { configureImageSnapshots, setReportsDir, type SnapshotDefaults } from './settings.js';
export { DEFAULT_PATH_TEMPLATE } from './baseline-path.js';
