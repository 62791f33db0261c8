/**
 * Text hygiene for everything that comes from a test run (names, errors, console output):
 * it is untrusted, may carry terminal colour codes, and may hold bytes XML 1.0 forbids.
 */

/** Removes ANSI/VT100 escape sequences (colours, cursor moves) that vitest and consoles emit. */
export function stripAnsi(text: string): string {
  return text
    .replace(/\x1b\[[0-9;?]*[ -/]*[@-~]/g, '')
    .replace(/\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)/g, '')
    .replace(/\x1b[()][A-Za-z0-9]/g, '')
    .replace(/\x1b[@-Z\\-_]/g, '');
}

/**
 * Replaces what XML 1.0 does not allow in a document — C0 controls other than tab/LF/CR,
 * lone surrogates, U+FFFE/U+FFFF — with U+FFFD, so one stray byte in a console log cannot
 * make a CI server reject the whole junit.xml.
 */
export function xmlSafeText(text: string): string {
  return text.replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}

/** Escapes text for an XML element body or a double-quoted attribute. */
export function escapeXml(text: string): string {
  return xmlSafeText(text).replace(/[&<>"]/g, (c) => XML_ENTITIES[c]!);
}

/** Escapes an attribute value and keeps its line breaks (a bare newline would be normalised to a space). */
export function escapeXmlAttribute(text: string): string {
  return escapeXml(text).replace(/\r/g, '&#13;').replace(/\n/g, '&#10;').replace(/\t/g, '&#9;');
}

const XML_ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' };

/** Escapes text for HTML element content and quoted attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ENTITIES[c]!);
}

const HTML_ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/**
 * JSON that is safe inside <script type="application/json">: no "</script>" or "<!--" can
 * appear because every "<" is written as \u003c (JSON.parse reads it back unchanged).
 */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

/**
 * A path relative to reports/ turned into a relative URL: each segment percent-encoded, so
 * "#", "?", spaces and a "javascript:" prefix cannot change what the link means.
 */
export function relativeUrl(path: string): string {
  return path
    .replace(/\\/g, '/')
    .split('/')
    .map((segment) => encodeURIComponent(segment))
    .join('/');
}
