/**
 * One CLI verb. Each lives in its own file under src/runner/commands/ and is listed in
 * ./index.ts; cli.ts only parses the verb path and dispatches.
 */
export interface CommandContext {
  /** Arguments after the verb path, unparsed (each command parses its own with node:util parseArgs). */
  argv: string[];
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Standard input for a verb that forwards it (vm exec -i); process.stdin when not given. */
  stdin?: NodeJS.ReadableStream;
}

export interface Command {
  /** Verb path, e.g. ['image', 'build'] for `macvm image build`. */
  path: string[];
  summary: string;
  /** Full --help text (usage line, options, examples). */
  help: string;
  /** Returns the process exit code. */
  run(context: CommandContext): Promise<number>;
}
