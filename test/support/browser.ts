import type { Page } from 'playwright-core';

/** Everything a page holds: visible text and the HTML of every frame (the Web UI renders metadata in iframes). */
export async function pageText(page: Page): Promise<string> {
  // The callback runs in the browser; typed loosely so this Node project needs no DOM typings.
  const parts = [await page.evaluate(() => (globalThis as unknown as { document: { body: { innerText: string } } }).document.body.innerText)];
  for (const frame of page.frames()) parts.push(await frame.content().catch(() => ''));
  return parts.join('\n');
}

/** Waits until `text` appears anywhere on the page (any frame). */
export async function waitForText(page: Page, text: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pageText(page)).includes(text)) {
    if (Date.now() > deadline) throw new Error(`the page never showed: ${text}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Retries `assertion` until it passes, like Playwright Test's web-first assertions (this project uses
 * playwright-core with jest): a page updates after a request, not at once. Rethrows the last failure.
 */
export async function soon(assertion: () => Promise<void> | void, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await assertion();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
