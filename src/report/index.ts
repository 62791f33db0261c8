/** The report: reads result files under reports/, writes index.html and junit.xml. Imports no runtime code. */
export { generateReport, type GenerateReportOptions, type GeneratedReport } from './generate.js';
export { renderHtml, type HtmlReportInput } from './html.js';
export { renderJunit } from './junit.js';
export { readRunResult, parseRunResult } from './read-results.js';
export { readBenchInputs, parseBenchRun, type BenchInputs } from './read-bench.js';
