/**
 * The report's stylesheet, inlined so index.html works from file:// with no network.
 * Light and dark follow prefers-color-scheme; colours are CSS variables so both share rules.
 */
export const REPORT_CSS = String.raw`
:root {
  color-scheme: light dark;
  --bg: #f6f8fa; --panel: #ffffff; --fg: #1f2328; --muted: #656d76; --border: #d0d7de; --hover: #f3f4f6;
  --accent: #0969da; --passed: #1a7f37; --failed: #cf222e; --flaky: #9a6700; --skipped: #6e7781;
  --code-bg: #f6f8fa; --error-bg: #ffebe9; --error-border: #ff818266; --chip: #eaeef2;
  --font: -apple-system, BlinkMacSystemFont, "Segoe UI", Helvetica, Arial, sans-serif;
  --mono: ui-monospace, SFMono-Regular, "SF Mono", Menlo, Consolas, "Liberation Mono", monospace;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0d1117; --panel: #161b22; --fg: #e6edf3; --muted: #8d96a0; --border: #30363d; --hover: #1f242c;
    --accent: #4493f8; --passed: #3fb950; --failed: #f85149; --flaky: #d29922; --skipped: #8d96a0;
    --code-bg: #0d1117; --error-bg: #2d1214; --error-border: #f8514966; --chip: #21262d;
  }
}
* { box-sizing: border-box; }
html { font-size: 14px; }
body { margin: 0; background: var(--bg); color: var(--fg); font-family: var(--font); line-height: 1.45; }
main { max-width: 1200px; margin: 0 auto; padding: 20px 24px 60px; }
a { color: var(--accent); }
code, pre { font-family: var(--mono); font-size: 12.5px; }
pre { margin: 0; padding: 10px 12px; background: var(--code-bg); border: 1px solid var(--border); border-radius: 6px; overflow: auto; white-space: pre-wrap; word-break: break-word; max-height: 420px; }
h1 { font-size: 20px; margin: 0; }
h2 { font-size: 16px; margin: 0; display: inline; }
h3 { font-size: 14px; margin: 0; }
.bench h3 { margin: 16px 0 8px; }
.muted { color: var(--muted); }
.small { font-size: 12px; }
.bad { color: var(--failed); }
.good { color: var(--passed); }
.empty { color: var(--muted); font-style: italic; }
.chip { display: inline-block; padding: 1px 8px; border-radius: 999px; background: var(--chip); font-size: 12px; white-space: nowrap; }
.run-header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 8px 16px; margin-bottom: 14px; }
.run-header .facts { display: flex; flex-wrap: wrap; gap: 6px; }
.summary-bar { display: flex; flex-wrap: wrap; align-items: center; gap: 8px; margin: 12px 0 16px; position: sticky; top: 0; z-index: 5; background: var(--bg); padding: 8px 0; border-bottom: 1px solid var(--border); }
.filters { display: flex; flex-wrap: wrap; gap: 4px; }
.filter { font: inherit; border: 1px solid var(--border); background: var(--panel); color: var(--fg); border-radius: 6px; padding: 4px 10px; cursor: pointer; display: inline-flex; gap: 6px; align-items: center; }
.filter:hover { background: var(--hover); }
.filter[aria-pressed="true"] { border-color: var(--accent); box-shadow: inset 0 0 0 1px var(--accent); }
.filter .count { font-weight: 600; }
.search { flex: 1 1 240px; min-width: 200px; font: inherit; padding: 5px 10px; border: 1px solid var(--border); border-radius: 6px; background: var(--panel); color: var(--fg); }
.search:focus, .filter:focus-visible, summary:focus-visible, button:focus-visible, input[type=range]:focus-visible { outline: 2px solid var(--accent); outline-offset: 1px; }
.shown { margin-left: auto; }
.dot { width: 10px; height: 10px; border-radius: 50%; display: inline-block; flex: none; }
.s-passed { background: var(--passed); } .s-failed { background: var(--failed); } .s-flaky { background: var(--flaky); } .s-skipped { background: var(--skipped); }
.t-passed { color: var(--passed); } .t-failed { color: var(--failed); } .t-flaky { color: var(--flaky); } .t-skipped { color: var(--skipped); }
.section { background: var(--panel); border: 1px solid var(--border); border-radius: 8px; padding: 10px 14px; margin-bottom: 16px; }
.section > summary { cursor: pointer; display: flex; gap: 10px; align-items: baseline; list-style: none; }
.section > summary::-webkit-details-marker { display: none; }
.section > summary::before { content: "▸"; color: var(--muted); }
.section[open] > summary::before { content: "▾"; }
.table-wrap { overflow-x: auto; margin-top: 10px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--border); vertical-align: top; }
thead th { font-size: 12px; color: var(--muted); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.verdict { font-weight: 600; }
.bench-facts { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 10px; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(370px, 1fr)); gap: 12px; }
.chart { margin: 0; border: 1px solid var(--border); border-radius: 6px; padding: 8px; }
.chart figcaption { margin-bottom: 4px; font-weight: 600; }
.chart svg { max-width: 100%; height: auto; display: block; }
.chart .grid { stroke: var(--border); stroke-width: 1; }
.chart .tick { fill: var(--muted); font-size: 10px; font-family: var(--font); }
.chart .trend { fill: none; stroke: var(--accent); stroke-width: 1.5; opacity: .6; }
.chart .whisker { stroke: var(--accent); stroke-width: 1.2; }
.chart circle { fill: var(--accent); }
.note { margin-top: 8px; color: var(--muted); }
.suite { background: var(--panel); border: 1px solid var(--border); border-radius: 8px; margin-bottom: 12px; content-visibility: auto; contain-intrinsic-size: auto 120px; }
.suite-head { display: flex; flex-wrap: wrap; align-items: center; gap: 6px 10px; padding: 10px 14px; border-bottom: 1px solid var(--border); }
.suite-head .file { color: var(--muted); font-family: var(--mono); font-size: 12px; }
.suite-head .duration { margin-left: auto; color: var(--muted); font-variant-numeric: tabular-nums; }
.vm-facts { display: flex; flex-wrap: wrap; gap: 6px; padding: 8px 14px 0; }
.vm-facts:empty { display: none; }
.suite-error { margin: 10px 14px; }
.tests { list-style: none; margin: 0; padding: 6px 0; }
.test-row { display: flex; align-items: baseline; gap: 10px; padding: 5px 14px; }
.test > summary { list-style: none; cursor: pointer; }
.test > summary::-webkit-details-marker { display: none; }
.test > summary:hover, div.test-row:hover { background: var(--hover); }
.test-row .name { flex: 1; min-width: 0; overflow-wrap: anywhere; }
.test-row .duration { color: var(--muted); font-variant-numeric: tabular-nums; white-space: nowrap; }
.test-row .icon { width: 14px; text-align: center; flex: none; font-weight: 700; }
.test-row .badge { font-size: 11px; padding: 0 6px; border-radius: 999px; border: 1px solid currentColor; white-space: nowrap; }
.test-row .preview { display: block; color: var(--failed); font-family: var(--mono); font-size: 12px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.test-row .chev { color: var(--muted); width: 10px; flex: none; }
.test[open] > summary .chev { transform: rotate(90deg); }
.test-body { padding: 4px 14px 14px 38px; display: grid; gap: 10px; }
.error-box { border: 1px solid var(--error-border); background: var(--error-bg); border-radius: 6px; padding: 10px 12px; display: grid; gap: 8px; }
.error-box .message { background: transparent; border: 0; padding: 0; color: var(--fg); max-height: none; }
.error-box .code { font-family: var(--mono); font-size: 12px; color: var(--failed); font-weight: 600; }
.error-box details > summary { cursor: pointer; color: var(--muted); font-size: 12px; margin-bottom: 4px; }
.artifacts { display: grid; gap: 12px; }
.artifact-links { display: flex; flex-wrap: wrap; gap: 8px; }
.screenshot img { max-width: 100%; height: auto; border: 1px solid var(--border); border-radius: 4px; }
.snap { border: 1px solid var(--border); border-radius: 6px; padding: 10px; }
.snap-head { display: flex; flex-wrap: wrap; gap: 6px 12px; align-items: baseline; margin-bottom: 8px; }
.snap-tabs { display: inline-flex; border: 1px solid var(--border); border-radius: 6px; overflow: hidden; margin-bottom: 10px; }
.snap-tabs button { font: inherit; font-size: 12px; border: 0; border-right: 1px solid var(--border); background: var(--panel); color: var(--fg); padding: 4px 12px; cursor: pointer; }
.snap-tabs button:last-child { border-right: 0; }
.snap-tabs button[aria-selected="true"] { background: var(--accent); color: #fff; }
.snap-view img { max-width: 100%; height: auto; display: block; image-rendering: pixelated; background: repeating-conic-gradient(#8882 0% 25%, transparent 0% 50%) 50% / 16px 16px; }
.side-by-side { display: grid; grid-template-columns: 1fr 1fr; gap: 10px; }
.side-by-side figure, .single figure { margin: 0; }
figcaption { font-size: 12px; color: var(--muted); margin-bottom: 4px; }
.slider-frame { position: relative; display: inline-block; max-width: 100%; cursor: ew-resize; touch-action: none; user-select: none; }
.slider-frame img { pointer-events: none; }
.slider-frame .over { position: absolute; inset: 0; width: 100%; height: 100%; }
.slider-frame .divider { position: absolute; top: 0; bottom: 0; width: 2px; margin-left: -1px; background: var(--accent); box-shadow: 0 0 0 1px #fff8; pointer-events: none; }
.slider-controls { display: flex; align-items: center; gap: 10px; margin-top: 6px; font-size: 12px; color: var(--muted); }
.slider-controls input { flex: 1; max-width: 480px; accent-color: var(--accent); }
.warning { color: var(--flaky); }
.more { text-align: center; padding: 12px; }
.more button { font: inherit; border: 1px solid var(--border); background: var(--panel); color: var(--fg); padding: 6px 14px; border-radius: 6px; cursor: pointer; }
.notes { margin: 0 0 12px; padding: 0; list-style: none; color: var(--muted); }
footer { margin-top: 30px; color: var(--muted); font-size: 12px; text-align: center; }
`;
