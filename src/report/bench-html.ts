import type { BenchRun, WorkloadResult } from '../shared/bench-records.js';
import { formatMemory, formatNumber, formatPercent } from './format.js';
import type { BenchInputs } from './read-bench.js';
import { escapeHtml as h } from './text.js';

/** How many past runs a chart draws; older ones are summarised in the caption. */
const CHART_RUNS = 40;

/**
 * The benchmark section, rendered on the server because it is small: the latest run as a
 * table (ratio ± CI, verdict against the baseline) and, per workload, an inline SVG of the
 * guest/host ratio over the history with its confidence interval as whiskers.
 */
export function renderBenchSection(bench: BenchInputs): string {
  const parts: string[] = [];
  if (!bench.latest && bench.history.length === 0) {
    // One quiet line: most test runs have no benchmarks and should not lead with an empty box.
    return '<p class="empty small" id="benchmarks">No benchmark results in this reports folder (bench/latest.json and bench/history.jsonl not found). Run <code>macvm bench</code> to add them.</p>';
  }
  if (bench.latest) parts.push(renderLatest(bench.latest));
  else parts.push('<p class="empty">No latest benchmark run (bench/latest.json not found); history only.</p>');
  parts.push(renderCharts(bench));
  if (bench.skippedHistoryLines.length > 0) {
    const list = bench.skippedHistoryLines
      .slice(0, 5)
      .map((s) => `<li>${h(s.problem)}</li>`)
      .join('');
    parts.push(`<details class="note"><summary>${bench.skippedHistoryLines.length} line(s) of bench/history.jsonl skipped (unreadable)</summary><ul>${list}</ul></details>`);
  }
  const slower = bench.latest?.workloads.filter((w) => w.baseline?.verdict === 'slower').length ?? 0;
  const summary = bench.latest ? `${bench.latest.workloads.length} workload(s)${slower ? ` · <span class="bad">${slower} slower</span>` : ''}` : '';
  return section(parts.join('\n'), summary);
}

function section(body: string, summary: string): string {
  return `<details class="section bench" id="benchmarks" open><summary><h2>Benchmarks</h2><span class="muted">${summary}</span></summary>\n${body}\n</details>`;
}

function renderLatest(run: BenchRun): string {
  const env = run.environment;
  const facts = [run.suite, env.provider, env.image, env.guestOs, env.cpus ? `${env.cpus} CPU` : '', formatMemory(env.memoryMiB), env.hostModel, env.hostOs, run.gitRef, run.at]
    .filter((f): f is string => !!f && f !== '–')
    .map((f) => `<span class="chip">${h(f)}</span>`)
    .join(' ');
  const rows = run.workloads.map(renderRow).join('\n');
  return `<div class="bench-facts">${facts}</div>
<div class="table-wrap"><table class="bench-table" data-testid="bench-table">
<thead><tr><th scope="col">Workload</th><th scope="col" class="num">Host median</th><th scope="col" class="num">Guest median</th><th scope="col" class="num">Guest / host (95 % CI)</th><th scope="col">vs baseline</th></tr></thead>
<tbody>
${rows}
</tbody></table></div>`;
}

function renderRow(w: WorkloadResult): string {
  const ci = (low: number, high: number) => `<span class="muted">${formatNumber(low)}–${formatNumber(high)}</span>`;
  const plusMinus = Math.max(w.ratio.median - w.ratio.ciLow, w.ratio.ciHigh - w.ratio.median);
  return `<tr data-workload="${h(w.name)}">
<th scope="row">${h(w.name)} <span class="muted small">${h(w.kind)}</span></th>
<td class="num">${formatNumber(w.host.medianMs)} ms ${ci(w.host.ciLowMs, w.host.ciHighMs)}</td>
<td class="num">${formatNumber(w.guest.medianMs)} ms ${ci(w.guest.ciLowMs, w.guest.ciHighMs)}</td>
<td class="num"><strong>${formatNumber(w.ratio.median)}×</strong> ± ${formatNumber(plusMinus)} ${ci(w.ratio.ciLow, w.ratio.ciHigh)}</td>
<td>${renderVerdict(w)}</td>
</tr>`;
}

function renderVerdict(w: WorkloadResult): string {
  const b = w.baseline;
  if (!b) return '<span class="muted">no baseline</span>';
  const label = { slower: 'slower', faster: 'faster', '~': 'no change', 'too-few-samples': 'too few samples' }[b.verdict];
  const cls = { slower: 'bad', faster: 'good', '~': 'muted', 'too-few-samples': 'muted' }[b.verdict];
  const p = Number.isFinite(b.pValue) ? `, p = ${b.pValue < 0.001 ? '< 0.001' : b.pValue.toFixed(3)}` : '';
  return `<span class="verdict ${cls}">${label}</span> <span class="muted small">${formatPercent(b.change)}${p}${b.against ? ` vs ${h(b.against)}` : ''}</span>`;
}

interface Point {
  at: string;
  runId: string;
  median: number;
  low: number;
  high: number;
}

function renderCharts(bench: BenchInputs): string {
  const runs = [...bench.history];
  // latest.json is normally also the last history line; add it only when it is not.
  if (bench.latest && !runs.some((r) => r.runId === bench.latest!.runId && r.at === bench.latest!.at)) runs.push(bench.latest);
  const series = new Map<string, Point[]>();
  for (const run of runs) {
    for (const w of run.workloads) {
      const key = run.suite ? `${run.suite} › ${w.name}` : w.name;
      const points = series.get(key) ?? [];
      points.push({ at: run.at, runId: run.runId, median: w.ratio.median, low: w.ratio.ciLow, high: w.ratio.ciHigh });
      series.set(key, points);
    }
  }
  if (series.size === 0) return '';
  const charts = [...series.entries()].map(([name, points]) => renderChart(name, points)).join('\n');
  return `<h3>Guest / host ratio over runs</h3><div class="charts">${charts}</div>`;
}

function renderChart(name: string, all: Point[]): string {
  const points = all.slice(-CHART_RUNS);
  const width = 360;
  const height = 150;
  const pad = { left: 40, right: 10, top: 12, bottom: 22 };
  const lows = points.map((p) => Math.min(p.low, p.median));
  const highs = points.map((p) => Math.max(p.high, p.median));
  let min = Math.min(...lows);
  let max = Math.max(...highs);
  if (max - min < 1e-9) {
    min -= 0.5;
    max += 0.5;
  }
  const margin = (max - min) * 0.1;
  min = Math.max(0, min - margin);
  max += margin;
  const x = (i: number) => pad.left + (points.length === 1 ? (width - pad.left - pad.right) / 2 : (i * (width - pad.left - pad.right)) / (points.length - 1));
  const y = (v: number) => pad.top + ((max - v) * (height - pad.top - pad.bottom)) / (max - min);
  const r = (n: number) => n.toFixed(1);
  const grid = [min, (min + max) / 2, max]
    .map((v) => `<line class="grid" x1="${pad.left}" x2="${width - pad.right}" y1="${r(y(v))}" y2="${r(y(v))}"/><text class="tick" x="${pad.left - 4}" y="${r(y(v) + 3)}" text-anchor="end">${formatNumber(v)}×</text>`)
    .join('');
  const whiskers = points
    .map((p, i) => {
      const cx = r(x(i));
      return `<g class="point"><title>${h(`${p.at || p.runId}: ${formatNumber(p.median)}× (CI ${formatNumber(p.low)}–${formatNumber(p.high)})`)}</title><line class="whisker" x1="${cx}" x2="${cx}" y1="${r(y(p.high))}" y2="${r(y(p.low))}"/><line class="whisker" x1="${r(x(i) - 3)}" x2="${r(x(i) + 3)}" y1="${r(y(p.high))}" y2="${r(y(p.high))}"/><line class="whisker" x1="${r(x(i) - 3)}" x2="${r(x(i) + 3)}" y1="${r(y(p.low))}" y2="${r(y(p.low))}"/><circle cx="${cx}" cy="${r(y(p.median))}" r="3"/></g>`;
    })
    .join('');
  const line = points.length > 1 ? `<polyline class="trend" points="${points.map((p, i) => `${r(x(i))},${r(y(p.median))}`).join(' ')}"/>` : '';
  const first = points[0]!;
  const last = points[points.length - 1]!;
  const axis = `<text class="tick" x="${pad.left}" y="${height - 6}">${h(shortDate(first.at) || 'first')}</text><text class="tick" x="${width - pad.right}" y="${height - 6}" text-anchor="end">${h(shortDate(last.at) || 'latest')}</text>`;
  const caption = `${h(name)} <span class="muted small">${points.length} run(s)${all.length > points.length ? `, last ${points.length} of ${all.length}` : ''}</span>`;
  return `<figure class="chart" data-workload="${h(name)}"><figcaption>${caption}</figcaption><svg viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${h(`${name}: guest/host ratio per run, latest ${formatNumber(last.median)}×`)}">${grid}${line}${whiskers}${axis}</svg></figure>`;
}

function shortDate(iso: string): string {
  return /^\d{4}-\d{2}-\d{2}/.test(iso) ? iso.slice(0, 10) : '';
}
