import { aptInstallLine, findTool, missingRequirements, requirementsFor, toolSearchPath } from '../../host-requirements.js';

/**
 * Host programs the linux-test build runs, and the Debian package that provides each: the
 * `image-build` part of the one host list in src/vm/host-requirements.ts. Everything else
 * (cpio archive, gzip, ELF reading) is done in TypeScript.
 */
export const BUILD_TOOLS: ReadonlyArray<{ tool: string; apt: string }> = requirementsFor('image-build').map((r) => ({ tool: r.bin, apt: r.apt }));

export { aptInstallLine, findTool, toolSearchPath };

/** The tools the build needs that are not installed, and the apt packages that bring them. */
export function missingHostTools(env: NodeJS.ProcessEnv = process.env): Promise<{ tools: string[]; aptPackages: string[] }> {
  return missingRequirements(requirementsFor('image-build'), env);
}
