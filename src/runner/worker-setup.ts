import { configureImageSnapshots, setReportsDir } from '../snapshot/settings.js';
import { currentRunContext } from './current-context.js';

/**
 * Runs in every test worker before the specs (vitest setupFiles): hands the config's
 * snapshot settings and the reports dir to the matcher, which also works in tests that
 * use no VM (a browser screenshot, say).
 */
const context = currentRunContext();
configureImageSnapshots(context.snapshots);
setReportsDir(context.reportsDir);
