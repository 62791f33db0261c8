import { readFileSync } from 'node:fs';

/**
 * The report page's script: browser/report-script.js, plain JavaScript type-checked against the
 * DOM by browser/tsconfig.json, inlined into report.html exactly as written. It is read from
 * beside this module, so the same file is inlined whether macvm runs from src/ (tsx, tests) or
 * from dist/ (`npm run build`, scripts/build.mjs, copies it there).
 */
const SCRIPT_URL = new URL('./browser/report-script.js', import.meta.url);

let script: string | undefined;

export function reportScript(): string {
  if (script === undefined) {
    const text = readFileSync(SCRIPT_URL, 'utf8');
    // Inside <script>…</script>, these would end the element or change how it is parsed.
    if (/<\/script|<!--/i.test(text)) throw new Error(`${SCRIPT_URL.pathname} contains "</script" or "<!--", which cannot be inlined`);
    script = text;
  }
  return script;
}
