import type {} from 'webdriverio';
import { PNG } from 'pngjs';
import { MacvmError } from '../errors.js';

export interface FullPageOptions {
  /**
   * Hide position:fixed and position:sticky elements after the first frame (default true),
   * so a fixed header appears once, at the top, instead of once per viewport step.
   * Trade-off: a sticky element further down the page is captured only if it is in the
   * first viewport. Set false for pages without fixed/sticky elements you care about.
   */
  hideFixed?: boolean;
  /** Refuse pages taller than this many CSS px (default 30 000): the PNG would be huge. */
  maxHeight?: number;
}

/** What the page reports about itself, in CSS px. */
export interface PageLayout {
  documentHeight: number;
  /** Width and height of the content viewport, without scrollbars (documentElement.client*). */
  viewportWidth: number;
  viewportHeight: number;
  /** window.innerHeight: the height a viewport screenshot covers (scrollbar included). */
  innerHeight: number;
}

export interface Frame {
  png: PNG;
  /** window.scrollY when the frame was taken (the browser may clamp what was asked). */
  scrollY: number;
}

/**
 * A full-page PNG for WebDriver sessions that cannot take one natively (Safari has no
 * BiDi; classic WebDriver screenshots only the viewport): scroll by viewport steps, take a
 * viewport screenshot at each, and stitch them. Only the vertical extent is stitched: the
 * result is as wide as the viewport. The device pixel ratio is taken from the screenshots
 * themselves (frame height / innerHeight), so HiDPI guests stitch at device resolution.
 * The page's scroll position (and any hidden fixed elements) are restored afterwards.
 */
export async function fullPageScreenshot(browser: WebdriverIO.Browser, options: FullPageOptions = {}): Promise<Buffer> {
  const hideFixed = options.hideFixed ?? true;
  const maxHeight = options.maxHeight ?? 30_000;
  // scrollingElement is <html> in standards mode and <body> in quirks mode (a page without a
  // doctype): only its client size is the viewport in both.
  const start = await browser.execute(() => {
    const root = document.scrollingElement ?? document.documentElement;
    return {
      x: window.scrollX,
      y: window.scrollY,
      documentHeight: Math.max(root.scrollHeight, document.documentElement.scrollHeight, document.body ? document.body.scrollHeight : 0),
      viewportWidth: root.clientWidth,
      viewportHeight: root.clientHeight,
      innerHeight: window.innerHeight,
    };
  });
  const layout: PageLayout = start;
  if (layout.documentHeight > maxHeight) {
    throw new MacvmError('MACVM_NOT_SUPPORTED', `The page is ${layout.documentHeight} px tall, more than maxHeight (${maxHeight} px) for a full-page screenshot.`, {
      hint: 'Pass { maxHeight } to fullPageScreenshot() if you really want a PNG that tall, or screenshot an element instead.',
    });
  }
  const frames: Frame[] = [];
  let hidden = false;
  try {
    for (const y of planScrollSteps(layout.documentHeight, layout.viewportHeight)) {
      const scrollY = await scrollAndSettle(browser, y);
      frames.push({ png: PNG.sync.read(Buffer.from(await browser.takeScreenshot(), 'base64')), scrollY });
      if (hideFixed && !hidden && frames.length === 1) {
        await browser.execute(hideFixedElements);
        hidden = true;
      }
    }
  } finally {
    if (hidden) await browser.execute(restoreFixedElements).catch(() => {});
    await browser.execute((x: number, y: number) => window.scrollTo({ left: x, top: y, behavior: 'instant' }), start.x, start.y).catch(() => {});
  }
  return PNG.sync.write(stitchFrames(frames, layout));
}

/** Scroll offsets (CSS px) that cover [0, documentHeight): viewport steps, the last one flush with the bottom. */
export function planScrollSteps(documentHeight: number, viewportHeight: number): number[] {
  if (!(viewportHeight > 0)) throw new MacvmError('MACVM_BAD_ARGUMENT', `The viewport height must be positive, got ${viewportHeight}.`);
  const steps: number[] = [];
  for (let y = 0; y + viewportHeight < documentHeight; y += viewportHeight) steps.push(y);
  const last = Math.max(0, documentHeight - viewportHeight);
  if (steps.length === 0 || steps[steps.length - 1] !== last) steps.push(last);
  return steps;
}

/**
 * Stitches viewport frames into one image of the whole document. Each frame contributes
 * only the rows not covered yet, so the overlap of the last (partial) step is not doubled.
 */
export function stitchFrames(frames: readonly Frame[], layout: PageLayout): PNG {
  const first = frames[0];
  if (!first) throw new MacvmError('MACVM_BAD_ARGUMENT', 'No frames to stitch.');
  const scale = first.png.height / layout.innerHeight;
  const width = Math.min(first.png.width, Math.round(layout.viewportWidth * scale));
  let covered = 0; // CSS px of the document written so far
  const rows: Array<{ frame: Frame; srcRow: number; destRow: number; count: number }> = [];
  for (const frame of frames) {
    const from = Math.max(covered, frame.scrollY);
    const to = Math.min(frame.scrollY + layout.viewportHeight, layout.documentHeight);
    if (to <= from) continue;
    const destRow = Math.round(from * scale);
    const srcRow = Math.round((from - frame.scrollY) * scale);
    const count = Math.min(Math.round(to * scale) - destRow, frame.png.height - srcRow);
    rows.push({ frame, srcRow, destRow, count });
    covered = to;
  }
  const height = rows.reduce((max, r) => Math.max(max, r.destRow + r.count), 0);
  const out = new PNG({ width, height });
  for (const { frame, srcRow, destRow, count } of rows) {
    const frameWidth = frame.png.width;
    for (let row = 0; row < count; row++) {
      const src = (srcRow + row) * frameWidth * 4;
      frame.png.data.copy(out.data, (destRow + row) * width * 4, src, src + Math.min(width, frameWidth) * 4);
    }
  }
  return out;
}

/** Scrolls without smooth-scrolling and waits two animation frames so the frame is painted. */
async function scrollAndSettle(browser: WebdriverIO.Browser, y: number): Promise<number> {
  // WebDriver's Execute Script awaits a returned promise (webdriverio's types do not say so).
  return (await browser.execute(
    (top: number) =>
      new Promise<number>((resolve) => {
        window.scrollTo({ left: 0, top, behavior: 'instant' });
        requestAnimationFrame(() => requestAnimationFrame(() => resolve(window.scrollY)));
      }),
    y,
  )) as unknown as number;
}

// Runs in the page. The original inline visibility is kept in a data attribute to restore it.
function hideFixedElements(): void {
  for (const element of Array.from(document.querySelectorAll<HTMLElement>('body *'))) {
    const position = getComputedStyle(element).position;
    if (position !== 'fixed' && position !== 'sticky') continue;
    element.setAttribute('data-macvm-visibility', element.style.getPropertyValue('visibility') + '|' + element.style.getPropertyPriority('visibility'));
    element.style.setProperty('visibility', 'hidden', 'important');
  }
}

function restoreFixedElements(): void {
  for (const element of Array.from(document.querySelectorAll<HTMLElement>('[data-macvm-visibility]'))) {
    const [value, priority] = (element.getAttribute('data-macvm-visibility') ?? '|').split('|');
    if (value) element.style.setProperty('visibility', value, priority ?? '');
    else element.style.removeProperty('visibility');
    element.removeAttribute('data-macvm-visibility');
  }
}
