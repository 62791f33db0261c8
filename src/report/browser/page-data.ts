import type { Artifact, SuiteResult, TestResult } from '../../shared/results.js';

/**
 * What the report page reads from <script type="application/json" id="macvm-data">: the run's
 * suites minus what the page can infer (html.ts `compactSuites` makes it). The one contract
 * between the generator and browser/report-script.js, which imports these types in JSDoc.
 */
export interface PageData {
  suites: PageSuite[];
}

export type PageSuite = Omit<SuiteResult, 'tests' | 'artifacts'> & {
  tests: PageTest[];
  /** Absent when empty. */
  artifacts?: Artifact[];
};

export type PageTest = Omit<TestResult, 'fullName' | 'retries' | 'artifacts'> & {
  /** Absent when it is just "suite › name" or the name itself. */
  fullName?: string;
  /** Absent when 0. */
  retries?: number;
  /** Absent when empty. */
  artifacts?: Artifact[];
};
