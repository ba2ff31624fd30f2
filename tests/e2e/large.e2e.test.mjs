// Browser end-to-end tests of edits of any size (issue 21, must-show 3): a 5 MB paste reaches
// another browser intact and is acknowledged; a paste beyond the document's maximum is refused
// in the page with a message while everything else keeps syncing; a change the server refuses
// for good (a lower --max-text-chars, or a message above --max-message-bytes) is not sent again,
// not by this page and not after a reload, and the page keeps receiving others' edits.
//
//   DOC_SERVER_BIN=target/debug/doc-server node --test --test-concurrency=1 tests/e2e/large.e2e.test.mjs
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';

import { Server, caretToEnd, launchBrowser, newDocId, openEditor, waitForStatus, waitForText } from './harness.mjs';

let browser;
const servers = [];

before(async () => {
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  for (const server of servers) await server.close();
});

async function startServer(extraArgs = []) {
  const server = await Server.start({ extraArgs });
  servers.push(server);
  return server;
}

/** `n` characters of varied text (lines, accents, an emoji now and then), the same every run. */
function bigText(n) {
  const words = ['lorem', 'ipsum', 'dolor', 'sit', 'amet', 'café', 'naïve', 'über', '🙂', 'x'];
  let text = '';
  let i = 0;
  while (text.length < n) {
    text += words[(i * 7919) % words.length] + (i % 12 === 11 ? '\n' : ' ');
    i++;
  }
  return text.slice(0, n - 1) + '.';
}

const sha256 = (text) => createHash('sha256').update(text, 'utf8').digest('hex');

/** Pastes `text` into the editor the way the browser does: a `paste` event with clipboard data. */
async function paste(page, text) {
  await caretToEnd(page);
  await page.evaluate((text) => {
    const data = new DataTransfer();
    data.setData('text/plain', text);
    const event = new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true });
    document.querySelector('.cm-content').dispatchEvent(event);
  }, text);
}

/** The same, with `n` characters made in the page (no need to send megabytes over CDP). */
async function pasteMade(page, n) {
  await caretToEnd(page);
  await page.evaluate((n) => {
    const data = new DataTransfer();
    data.setData('text/plain', 'y'.repeat(n));
    const event = new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true });
    document.querySelector('.cm-content').dispatchEvent(event);
  }, n);
}

/** The page's text (the client's and the editor's, which must agree) as a SHA-256 and length. */
async function digestOf(page) {
  return page.evaluate(async () => {
    const { client, view } = window.crdtEditor;
    const text = client.text();
    if (view.state.doc.toString() !== text) return { mismatch: true };
    const hash = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
    return { length: text.length, sha: [...new Uint8Array(hash)].map((b) => b.toString(16).padStart(2, '0')).join('') };
  });
}

/**
 * Counts the WebSockets the pages of `context` open (from now on: call it before opening them)
 * and the frames they send above `big` bytes.
 */
function watchSockets(context, big) {
  const counts = { sockets: 0, bigFrames: 0, closes: [] };
  context.on('page', (page) =>
    page.on('websocket', (socket) => {
      counts.sockets += 1;
      socket.on('framesent', ({ payload }) => {
        if (payload.length > big) counts.bigFrames += 1;
      });
      socket.on('close', () => counts.closes.push(Date.now()));
    }),
  );
  return counts;
}

/** Waits until the page's text (the whole of it, not only the lines on screen) includes `part`. */
async function waitForPart(page, part, timeout = 20000) {
  await page.waitForFunction((part) => window.crdtEditor.client.text().includes(part), part, { timeout });
}

const noticeOf = (page) => page.locator('#notice').textContent();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Both ways: `a` types, `b` sees it; `b` types, `a` sees it. */
async function stillSyncs(a, b, label) {
  await caretToEnd(a);
  await a.keyboard.type(` A-${label}`);
  await waitForPart(b, `A-${label}`);
  await caretToEnd(b);
  await b.keyboard.type(` B-${label}`);
  await waitForPart(a, `B-${label}`);
  await waitForStatus(a, 'online');
  await waitForStatus(b, 'online');
}

test('1. a 5 MB paste reaches the other browser intact and is acknowledged', async () => {
  const server = await startServer();
  const id = newDocId('paste5mb');
  const contextA = await browser.newContext();
  const contextB = await browser.newContext();
  try {
    const a = await openEditor(contextA, server.url, id, 'Ann');
    const b = await openEditor(contextB, server.url, id, 'Bob');
    const text = bigText(5_000_000);
    const started = Date.now();
    await paste(a, text);
    await b.waitForFunction((n) => window.crdtEditor.client.textLength() === n, text.length, { timeout: 60000 });
    const arrived = Date.now() - started;
    await waitForStatus(a, 'online', 60000);
    const acked = Date.now() - started;
    const expected = { length: text.length, sha: sha256(text) };
    assert.deepEqual(await digestOf(b), expected, 'the other browser has it intact');
    assert.deepEqual(await digestOf(a), expected);
    assert.equal(await a.locator('#status').textContent(), 'Saved');
    assert.equal(await a.locator('#status').getAttribute('data-pending'), '0');
    const stored = await server.docValue(id);
    assert.equal(sha256(stored.body), expected.sha, 'the server holds it');
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const memory = Number(metrics.match(/^doc_server_document_memory_bytes (\d+)/m)?.[1]);
    console.log(
      `5 MB paste: at the other browser after ${arrived} ms, acknowledged after ${acked} ms; ` +
        `the loaded document takes ${(memory / 1e6).toFixed(1)} MB of the server's memory budget`,
    );
    await stillSyncs(a, b, 'after');
  } finally {
    await contextA.close();
    await contextB.close();
  }
});

test('2. a paste beyond the maximum is refused in the page with a message; syncing goes on', async () => {
  const server = await startServer();
  const id = newDocId('toolarge');
  const contextA = await browser.newContext();
  const contextB = await browser.newContext();
  try {
    const sockets = watchSockets(contextA, 100_000);
    const a = await openEditor(contextA, server.url, id, 'Ann');
    const b = await openEditor(contextB, server.url, id, 'Bob');
    const opened = sockets.sockets;
    await caretToEnd(a);
    await a.keyboard.type('before');
    await waitForText(b, (text) => text === 'before');
    const max = await a.evaluate(() => window.crdtEditor.client.maxTextChars);
    assert.equal(max, 16 * 1024 * 1024, 'the page knows the server default');
    await pasteMade(a, max + 1);
    const notice = await noticeOf(a);
    assert.match(notice, /That edit was not made: it adds 16,777,217 characters/);
    assert.match(notice, /at most 16,777,216 characters/);
    assert.equal(await a.evaluate(() => window.crdtEditor.client.text()), 'before', 'nothing was applied');
    assert.equal(await a.evaluate(() => window.crdtEditor.view.state.doc.toString()), 'before');
    await stillSyncs(a, b, 'after');
    assert.equal(sockets.bigFrames, 0, 'nothing large was sent');
    assert.equal(sockets.sockets, opened, 'the connection never dropped');
  } finally {
    await contextA.close();
    await contextB.close();
  }
});

test('3. a change the server refuses for good is not resent, also after a reload; others still sync', async () => {
  // The page believes the default maximum; this server allows 1,000 characters.
  const server = await startServer(['--max-text-chars', '1000']);
  const id = newDocId('refused');
  const contextA = await browser.newContext();
  const contextB = await browser.newContext();
  const sockets = watchSockets(contextA, 4000);
  try {
    const a = await openEditor(contextA, server.url, id, 'Ann');
    const opened = sockets.sockets;
    const b = await openEditor(contextB, server.url, id, 'Bob');
    await caretToEnd(b);
    await b.keyboard.type('hello');
    await waitForText(a, (text) => text === 'hello');
    await paste(a, bigText(5000));
    await a.locator('#notice', { hasText: 'did not accept' }).waitFor({ timeout: 10000 });
    const notice = await noticeOf(a);
    assert.match(notice, /the document would grow beyond the size the server allows/);
    await waitForText(a, (text) => text === 'hello', 10000);
    await waitForStatus(a, 'online');
    await sleep(3000);
    assert.equal(sockets.bigFrames, 1, 'the refused change was sent once');
    assert.equal(sockets.sockets, opened + 1, "one reconnect, to rebuild from the server's copy");
    await stillSyncs(a, b, 'one');

    // A reload: nothing of the refused change comes back from IndexedDB.
    await a.reload();
    await waitForStatus(a, 'online');
    await sleep(3000);
    assert.equal(sockets.bigFrames, 1, 'not sent again after the reload');
    assert.equal(sockets.sockets, opened + 2, 'one connection for the reload');
    const text = await a.evaluate(() => window.crdtEditor.client.text());
    assert.ok(text.startsWith('hello') && text.includes('B-one') && !text.includes('lorem'), text);
    await stillSyncs(a, b, 'two');
    assert.equal((await server.docValue(id)).body, await a.evaluate(() => window.crdtEditor.client.text()));
  } finally {
    await contextA.close();
    await contextB.close();
  }
});

test('4. a change above the server message limit (close 1009) is not resent, also after a reload', async () => {
  const server = await startServer(['--max-message-bytes', '65536']);
  const id = newDocId('toobig');
  const contextA = await browser.newContext();
  const contextB = await browser.newContext();
  const sockets = watchSockets(contextA, 65536);
  try {
    const a = await openEditor(contextA, server.url, id, 'Ann');
    const opened = sockets.sockets;
    const b = await openEditor(contextB, server.url, id, 'Bob');
    await caretToEnd(b);
    await b.keyboard.type('hello');
    await waitForText(a, (text) => text === 'hello');
    // 200,000 characters: one piece, one frame of about 200 KB.
    await pasteMade(a, 200_000);
    await a.locator('#notice', { hasText: 'too large to send' }).waitFor({ timeout: 10000 }).catch(async (error) => {
      throw new Error(`${error.message}; notice: ${await noticeOf(a)}; ${JSON.stringify(sockets)}`);
    });
    await waitForText(a, (text) => text === 'hello', 10000);
    await waitForStatus(a, 'online');
    await sleep(3000);
    assert.equal(sockets.bigFrames, 1, 'the frame above the limit was sent once');
    // One after the close, one to rebuild from the server's copy without the dropped change.
    assert.equal(sockets.sockets, opened + 2, `two reconnects: ${JSON.stringify(sockets)}`);
    await stillSyncs(a, b, 'one');

    await a.reload();
    await waitForStatus(a, 'online');
    await sleep(3000);
    assert.equal(sockets.bigFrames, 1, 'not sent again after the reload');
    assert.equal(sockets.sockets, opened + 3, 'one connection for the reload');
    await stillSyncs(a, b, 'two');
    assert.ok(!(await a.evaluate(() => window.crdtEditor.client.text())).includes('yyy'));
  } finally {
    await contextA.close();
    await contextB.close();
  }
});
