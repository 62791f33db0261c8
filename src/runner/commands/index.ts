import type { Command } from './command.js';

/**
 * Every CLI verb, loaded only when called, so `macvm vm ls` does not pay for loading
 * vitest or webdriverio. `summary` is here so `macvm --help` needs no imports.
 */
export interface CommandEntry {
  path: string[];
  summary: string;
  load: () => Promise<Command>;
}

export const COMMANDS: CommandEntry[] = [
  { path: ['init'], summary: 'Start a project: macvm.config.ts, an example spec and an npm script', load: async () => (await import('./init.js')).initCommand },
  { path: ['test'], summary: 'Run specs with vitest and the macvm preset (vitest flags work too)', load: async () => (await import('./test.js')).testCommand },
  { path: ['report'], summary: 'Make reports/index.html and junit.xml from the last run (--open to view)', load: async () => (await import('./report.js')).reportCommand },
  { path: ['gc'], summary: 'Remove VMs, clones and sessions that dead runs left behind', load: async () => (await import('./gc.js')).gcCommand },
  { path: ['bench'], summary: 'Guest-vs-host benchmarks: run bench specs, compare with a baseline, gate on regressions', load: async () => (await import('./bench.js')).benchCommand },
  { path: ['doctor'], summary: 'Check which providers work on this host and what is missing (--fix installs it)', load: async () => (await import('./doctor.js')).doctorCommand },
  { path: ['image', 'ls'], summary: 'List local images', load: async () => (await import('./image.js')).imageLsCommand },
  { path: ['image', 'build'], summary: 'Build an image from a recipe (linux-test, linux-browser)', load: async () => (await import('./image.js')).imageBuildCommand },
  { path: ['image', 'create'], summary: 'Create a macOS image from an IPSW (Apple Silicon, vz)', load: async () => (await import('./image-create.js')).imageCreateCommand },
  { path: ['image', 'pull'], summary: 'Pull an image from an OCI registry (Tart or macvm qemu format)', load: async () => (await import('./image-registry.js')).imagePullCommand },
  { path: ['image', 'push'], summary: 'Push a local image to an OCI registry', load: async () => (await import('./image-registry.js')).imagePushCommand },
  { path: ['image', 'rm'], summary: 'Remove a local image', load: async () => (await import('./image.js')).imageRmCommand },
  { path: ['vm', 'start'], summary: 'Start a VM that outlives this command (for manual use)', load: async () => (await import('./vm.js')).vmStartCommand },
  { path: ['vm', 'ls'], summary: 'List VMs (running or left behind)', load: async () => (await import('./vm.js')).vmLsCommand },
  { path: ['vm', 'exec'], summary: 'Run a command in a VM: macvm vm exec <id> -- <command>', load: async () => (await import('./vm.js')).vmExecCommand },
  { path: ['vm', 'stop'], summary: 'Power a VM down (graceful, then forced)', load: async () => (await import('./vm.js')).vmStopCommand },
  { path: ['vm', 'rm'], summary: 'Stop a VM and delete its clone', load: async () => (await import('./vm.js')).vmRmCommand },
];
