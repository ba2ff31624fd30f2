// The history view's first look in Chromium on a document holding automerge-paper's whole
// history (issue 22, must-show 1): one page types the trace (259,778 changes, one per patch,
// through the page's own keystroke path) into a server, then a second browser opens the
// document and clicks History; the time is from the click to the frame after the last
// version's text is in the page. A measurement, not a test:
//
//   scripts/e2e.sh builds what it needs; then
//   cargo build --release -p doc-server
//   DOC_SERVER_BIN=target/release/doc-server node tests/e2e/historyview.mjs [runs=3]
//
// The trace comes from ../shared/traces (or $TRACES_DIR). The server runs without the
// per-connection change rate (`--changes-per-second 0`), so the upload is not throttled.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

import { Server, launchBrowser, newDocId, openEditor, waitForStatus } from './harness.mjs';

const root = path.resolve(fileURLToPath(new URL('../..', import.meta.url)));
const RUNS = Number(process.argv[2] ?? 3);
const traces = process.env.TRACES_DIR ?? path.join(root, '..', 'shared', 'traces');

function loadTrace() {
  const file = path.join(traces, 'automerge-paper.json.gz');
  const trace = JSON.parse(gunzipSync(readFileSync(file)).toString('utf8'));
  return { patches: trace.txns.flatMap((txn) => txn.patches), end: trace.endContent };
}

const { patches, end } = loadTrace();
const server = await Server.start({ extraArgs: ['--changes-per-second', '0', '--bytes-per-second', '0'] });
const browser = await launchBrowser();
try {
  const id = newDocId('history-paper');
  const writer = await browser.newContext();
  const page = await openEditor(writer, server.url, id, 'Typist');
  const started = Date.now();
  // The page's own keystroke path (client.edit + save + send), in slices so it can send.
  for (let at = 0; at < patches.length; at += 20000) {
    await page.evaluate((slice) => {
      for (const [pos, del, text] of slice) window.crdtEditor.localEdit(pos, pos + del, text);
    }, patches.slice(at, at + 20000));
  }
  await waitForStatus(page, 'online', 600000);
  console.log(`typed ${patches.length} patches and had them acknowledged in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  await writer.close();

  const times = [];
  for (let run = 0; run < RUNS; run++) {
    const reader = await browser.newContext();
    const view = await openEditor(reader, server.url, id, 'Reader');
    // A person reads a moment before opening the history: the page has stored its first copy.
    await view.locator('#status[data-local="saved"]').waitFor();
    await view.waitForTimeout(2000);
    await view.evaluate(() => {
      window.longTasks = [];
      new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) window.longTasks.push(`${entry.startTime.toFixed(0)}+${entry.duration.toFixed(0)}`);
      }).observe({ type: 'longtask' });
    });
    // The moment the last version is on screen, seen from inside the page (Playwright's own
    // waiting polls at up to 500 ms intervals).
    await view.evaluate(() => {
      const label = document.querySelector('#history-label');
      new MutationObserver(() => {
        if (/^(\d+) of \1 /.test(label.textContent) && window.historyShown === undefined) {
          requestAnimationFrame(() => (window.historyShown = performance.now()));
        }
      }).observe(label, { childList: true, characterData: true, subtree: true });
    });
    const clicked = await view.evaluate(() => performance.now());
    await view.getByRole('button', { name: 'History' }).click();
    await view.locator('#history-label', { hasText: /^(\d+) of \1 / }).waitFor({ timeout: 60000 });
    await view.waitForFunction(() => window.historyShown !== undefined);
    const shown = await view.evaluate(() => window.historyShown);
    const text = await view.locator('#history-text').textContent();
    if (text !== end) throw new Error(`the last version is not the final text: ${text.length} vs ${end.length} characters: ${JSON.stringify(text.slice(0, 80))}`);
    times.push(shown - clicked);
    const fetches = await view.evaluate(() =>
      performance
        .getEntriesByType('resource')
        .filter((e) => e.name.includes('/history'))
        .map((e) => `${e.name.replace(/^.*\/docs\/[^/]+/, '')} ${e.startTime.toFixed(0)}+${e.duration.toFixed(0)} ms`),
    );
    const longTasks = await view.evaluate(() => window.longTasks);
    console.log(`  run ${run + 1}: clicked at ${clicked.toFixed(0)} ms; ${fetches.join(', ')}; long tasks ${longTasks.join(', ')}`);
    await reader.close();
  }
  times.sort((a, b) => a - b);
  console.log(`history first look (click -> last version shown): ${times.map((t) => `${t.toFixed(0)} ms`).join(', ')}`);
} finally {
  await browser.close();
  await server.close();
}
