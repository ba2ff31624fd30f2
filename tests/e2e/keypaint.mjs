// Key → paint latency in Chromium at 100k characters (issue 22, must-show 2): the editor page
// (CodeMirror over the wasm client, saving and syncing every keystroke) beside plain
// CodeMirror 6 with the same editing extensions and no sync, in the same run. A measurement,
// not a test:
//
//   scripts/e2e.sh builds what it needs; then
//   node tests/e2e/keypaint.mjs [keys=200] [runs=3]
//
// Each key is a real key press (CDP input). Latency is from the keydown event's timestamp to
// the first moment after the next frame was painted (a task queued from requestAnimationFrame).
// Two documents of 100k characters: one pasted in one edit, one built by 4,000 random edits
// (inserts and deletes at random places). Prints p50 / p99 per editor and their ratio.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { Server, launchBrowser, newDocId, openEditor } from './harness.mjs';

const root = path.resolve(fileURLToPath(new URL('../..', import.meta.url)));
// esbuild is a dev dependency of web/ (installed by `npm ci` there).
const { build } = createRequire(path.join(root, 'web', 'package.json'))('esbuild');
const KEYS = Number(process.argv[2] ?? 200);
const RUNS = Number(process.argv[3] ?? 3);
const SIZE = 100_000;

/** Plain CodeMirror 6 with the editor page's editing extensions, as one script. */
async function plainBundle() {
  const result = await build({
    stdin: {
      contents: `
        import { EditorState } from '@codemirror/state';
        import { EditorView, keymap, drawSelection, highlightActiveLine } from '@codemirror/view';
        import { defaultKeymap, history, historyKeymap } from '@codemirror/commands';
        import { search, searchKeymap, highlightSelectionMatches } from '@codemirror/search';
        window.plainView = new EditorView({
          parent: document.querySelector('#editor'),
          state: EditorState.create({
            doc: '',
            extensions: [history(), drawSelection(), highlightActiveLine(), EditorView.lineWrapping,
              search({ top: true }), highlightSelectionMatches(),
              keymap.of([...searchKeymap, ...defaultKeymap, ...historyKeymap])],
          }),
        });`,
      resolveDir: path.join(root, 'web'),
    },
    bundle: true,
    format: 'iife',
    minify: true,
    write: false,
  });
  return result.outputFiles[0].text;
}

/** Seeded random numbers, so both editors get the same edits. */
function rng(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

/** The 4,000 edits that build a document of about SIZE characters. */
function randomEdits() {
  const random = rng(22);
  const words = 'the quick brown fox jumps over a lazy dog while people edit together '.split(' ');
  const edits = [];
  let length = 0;
  for (let i = 0; i < 4000; i++) {
    const at = Math.floor(random() * (length + 1));
    if (i % 5 === 4 && length > 40) {
      const len = Math.min(length - at, 1 + Math.floor(random() * 10));
      edits.push({ from: at, to: at + len, insert: '' });
      length -= len;
    } else {
      let text = '';
      const want = Math.ceil((SIZE * 1.03) / 3200);
      while (text.length < want) text += `${words[Math.floor(random() * words.length)]} `;
      if (random() < 0.1) text += '\n';
      edits.push({ from: at, to: at, insert: text });
      length += text.length;
    }
  }
  return edits;
}

function pastedText() {
  const line = 'Plain prose for a long document, the kind people keep for years. ';
  let text = '';
  while (text.length < SIZE) text += line + (text.length % 700 < line.length ? '\n' : '');
  return text.slice(0, SIZE);
}

/** Fills the page's editor (`viewExpr` evaluates to its EditorView) and measures KEYS keys. */
async function measure(page, viewExpr, shape) {
  await page.evaluate(
    ({ viewExpr, shape, pasted, edits }) => {
      const view = eval(viewExpr);
      if (shape === 'pasted') {
        view.dispatch({ changes: { from: 0, insert: pasted }, userEvent: 'input.paste' });
      } else {
        for (const edit of edits) view.dispatch({ changes: edit, userEvent: 'input.type' });
      }
      view.dispatch({ selection: { anchor: Math.floor(view.state.doc.length / 2) } });
      view.focus();
      window.keyLatencies = [];
      document.addEventListener(
        'keydown',
        (event) => {
          const start = event.timeStamp;
          requestAnimationFrame(() => {
            const channel = new MessageChannel();
            channel.port1.onmessage = () => window.keyLatencies.push(performance.now() - start);
            channel.port2.postMessage(null);
          });
        },
        { capture: true },
      );
    },
    { viewExpr, shape, pasted: pastedText(), edits: shape === 'pasted' ? [] : randomEdits() },
  );
  await page.waitForTimeout(500);
  for (let i = 0; i < KEYS; i++) {
    await page.keyboard.press('abcdefghij'[i % 10]);
    await page.waitForTimeout(20);
  }
  await page.waitForTimeout(300);
  const latencies = await page.evaluate(() => window.keyLatencies);
  const length = await page.evaluate((viewExpr) => eval(viewExpr).state.doc.length, viewExpr);
  return { latencies, length };
}

function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const server = await Server.start();
const browser = await launchBrowser();
const bundle = await plainBundle();
try {
  for (const shape of ['pasted', 'random edits']) {
    const ours = [];
    const plain = [];
    for (let run = 0; run < RUNS; run++) {
      const context = await browser.newContext();
      const page = await openEditor(context, server.url, newDocId('keypaint'), 'Timer');
      const a = await measure(page, 'window.crdtEditor.view', shape);
      ours.push(...a.latencies);
      await context.close();

      const plainContext = await browser.newContext();
      const plainPage = await plainContext.newPage();
      await plainPage.setContent('<!doctype html><html><body><div id="editor"></div></body></html>');
      await plainPage.addScriptTag({ content: bundle });
      const b = await measure(plainPage, 'window.plainView', shape);
      plain.push(...b.latencies);
      await plainContext.close();
      if (run === 0) console.log(`${shape}: documents of ${a.length} and ${b.length} characters`);
    }
    const row = (name, values) =>
      `  ${name.padEnd(22)} p50 ${percentile(values, 50).toFixed(1)} ms  p99 ${percentile(values, 99).toFixed(1)} ms  (${values.length} keys)`;
    console.log(row('editor page', ours));
    console.log(row('plain CodeMirror 6', plain));
    console.log(
      `  ratio                  p50 ${(percentile(ours, 50) / percentile(plain, 50)).toFixed(2)}x  p99 ${(percentile(ours, 99) / percentile(plain, 99)).toFixed(2)}x`,
    );
  }
} finally {
  await browser.close();
  await server.close();
}
