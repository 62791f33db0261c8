import { configureImageSnapshots, setReportsDir } from '../snapshot/settings.js';
import { currentRunContext } from './current-context.js';
import { watchRunner } from './worker-watch.js';

/**
 * Runs in every test worker before the specs (vitest setupFiles): hands the config's
 * snapshot settings and the reports dir to the matcher, which also works in tests that
 * use no VM (a browser screenshot, say); and ties the worker to its runner: when the runner
 * dies, the worker stops the session's VMs and exits (./worker-watch.ts).
 */
const context = currentRunContext();
configureImageSnapshots(context.snapshots);
setReportsDir(context.reportsDir);
watchRunner(context);
