import ts from 'typescript';
import { CONFIG_RULE } from '../../src/runner/config-schema.js';
import type { Rule } from '../../src/util/validate.js';

/** The top-level keys of macvm.config.ts, from the schema itself. */
const TOP_KEYS = Object.keys((CONFIG_RULE as Extract<Rule, { kind: 'object' }>).keys);

/**
 * Config key paths written in text: `images.<name>.ssh.hostKey`, `images["sonoma"].ssh.user`,
 * `qemu.accelerator`. A path must start a word (not `record.ssh.host`, which is code).
 */
export function configPathsIn(text: string): string[] {
  const pattern = new RegExp(`(?<![\\w.$/'"<\\-])(?:${TOP_KEYS.join('|')})(?:\\.(?:<[^>]+>|[A-Za-z*][\\w-]*)|\\["[^"]*"\\])+`, 'g');
  // File names (qemu.log, orchard.yml) are not config paths.
  return [...text.matchAll(pattern)].map((m) => m[0]).filter((path) => !/\.(log|json|jsonl|ya?ml|png|xml|html|[cm]?[jt]s)$/.test(path));
}

/** Why the schema does not accept `path`, or undefined when it does. A `<placeholder>` stands for any record key. */
export function configPathProblem(path: string): string | undefined {
  const segments = [...path.matchAll(/\.?(<[^>]+>|[A-Za-z*][\w-]*)|\["([^"]*)"\]/g)].map((m) => m[2] ?? m[1]!);
  let rule: Rule = CONFIG_RULE;
  for (const segment of segments) {
    if (rule.kind === 'object') {
      // `slots.<provider>`: a placeholder for one of the keys, as the last segment only.
      if (segment.startsWith('<') && segment === segments.at(-1)) return undefined;
      const next: Rule | undefined = rule.keys[segment];
      if (!next) return `"${segment}" is not a key here (known: ${Object.keys(rule.keys).join(', ')})`;
      rule = next;
    } else if (rule.kind === 'record') {
      const placeholder = segment.startsWith('<');
      if (!placeholder && rule.keyPattern && !rule.keyPattern.test(segment)) return `"${segment}" is not ${rule.keyDescription ?? 'a valid key'}`;
      rule = rule.value;
    } else {
      return `"${segment}" goes below a ${rule.kind}, which has no keys`;
    }
  }
  return undefined;
}

/**
 * The text of every string and template literal inside `new MacvmError(…)` in a TypeScript
 * source — the messages and hints users read — with `${…}` substitutions written as `<…>` so
 * they read as placeholders.
 */
export function errorTextsOf(source: string, fileName = 'file.ts'): string[] {
  const file = ts.createSourceFile(fileName, source, ts.ScriptTarget.Latest, true);
  const texts: string[] = [];
  const collect = (node: ts.Node): void => {
    if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) texts.push(node.text);
    else if (ts.isTemplateExpression(node)) texts.push(node.head.text + node.templateSpans.map((span) => `<${ts.isIdentifier(span.expression) ? span.expression.text : 'value'}>${span.literal.text}`).join(''));
    ts.forEachChild(node, collect);
  };
  const visit = (node: ts.Node): void => {
    if (ts.isNewExpression(node) && node.expression.getText(file) === 'MacvmError') node.arguments?.forEach(collect);
    ts.forEachChild(node, visit);
  };
  visit(file);
  return texts;
}
