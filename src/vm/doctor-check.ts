import type { HostFacts } from './host-facts.js';
import type { BuildProgressEvent, ProviderConfigView } from './provider-definition.js';

/** One line of `macvm doctor`. */
export interface DoctorCheck {
  area: string;
  ok: boolean;
  detail: string;
  /** Debian packages that fix it. */
  apt?: string[];
  /** How to fix it by hand, when apt is not the answer. */
  fix?: string;
  /** True when `doctor --fix` mends it without apt (a guest build, signing vmhost). */
  fixedByDoctor?: boolean;
  /** A provider this host cannot run at all (vz on Linux): reported, never a failure. */
  notForThisHost?: boolean;
}

/** What a provider's doctor checks are given. */
export interface DoctorContext {
  host: HostFacts;
  /** The provider's slice of macvm.config.ts, when the config loads. */
  config: ProviderConfigView;
  /** `--fix`: mend what can be mended (a second pass runs after the fixes). */
  fix: boolean;
  /** `--with-test-tools`: also what macvm's own tests need (the linux-browser guest). */
  withTestTools: boolean;
  /** Progress of long repairs (guest builds); silent with --json. */
  progress: RepairProgress;
}

export interface RepairProgress {
  /** A line saying what starts now. */
  say(line: string): void;
  /** A step of a long build (redrawn in place on a terminal). */
  update(event: BuildProgressEvent): void;
  /** The build is over: end its progress line. */
  done(): void;
}
