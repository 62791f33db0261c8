/**
 * The option objects of MacVM's methods, checked at the call the way withMacVM's and
 * startMacVM's are: specs run untyped under vitest, so `vm.exec('sleep 30', { timeout: 1000 })`
 * (execa's and Playwright's name for it) would otherwise run the command to its end with no
 * time limit and pass. Every problem becomes one MACVM_BAD_ARGUMENT naming the key, with a
 * did-you-mean (`timeout` → `timeoutMs`).
 */
import type { Rule } from '../util/validate.js';

const positiveMs: Rule = { kind: 'number', min: 0, exclusiveMin: true };
/** 0: any free port. */
const port: Rule = { kind: 'integer', min: 0, max: 65535 };

export const EXEC_OPTIONS_RULE: Rule = {
  kind: 'object',
  keys: {
    // Names and values are checked where they are exported into the remote shell.
    env: { kind: 'any' },
    cwd: { kind: 'string', nonEmpty: true },
    timeoutMs: positiveMs,
    stdin: { kind: 'any' },
    onStdout: { kind: 'function' },
    onStderr: { kind: 'function' },
    reject: { kind: 'boolean' },
    signal: { kind: 'any' },
  },
};

export const WRITE_FILE_OPTIONS_RULE: Rule = { kind: 'object', keys: { mode: { kind: 'integer', min: 0, max: 0o7777 } } };

export const FORWARD_GUEST_PORT_OPTIONS_RULE: Rule = { kind: 'object', keys: { guestHost: { kind: 'string', nonEmpty: true }, localPort: port } };

export const EXPOSE_HOST_PORT_OPTIONS_RULE: Rule = { kind: 'object', keys: { guestPort: port } };

export const RESTART_OPTIONS_RULE: Rule = { kind: 'object', keys: { deadline: { kind: 'integer', min: 1 } } };

export const SCREENSHOT_OPTIONS_RULE: Rule = { kind: 'object', keys: { stable: { kind: 'boolean' }, timeoutMs: positiveMs, intervalMs: { kind: 'number', min: 0 } } };

export const BROWSER_OPTIONS_RULE: Rule = {
  kind: 'object',
  required: ['browserName'],
  keys: {
    browserName: { kind: 'enum', values: ['chrome', 'safari'] },
    capabilities: { kind: 'any' },
    driverPath: { kind: 'string', nonEmpty: true },
    driverPort: port,
    driverArgs: { kind: 'array', item: { kind: 'string' } },
    readyTimeoutMs: positiveMs,
  },
};

export const SIMULATOR_OPTIONS_RULE: Rule = {
  kind: 'object',
  required: ['deviceType'],
  keys: {
    deviceType: { kind: 'string', nonEmpty: true },
    runtime: { kind: 'string', nonEmpty: true },
    reuse: { kind: 'boolean' },
    name: { kind: 'string', nonEmpty: true },
    bootTimeoutMs: positiveMs,
  },
};
