// Browser end-to-end tests of the fallback transport (issue 21, must-show 2): with WebSocket
// upgrades refused (`--no-websocket`: HTTP 403), pages fall back to Server-Sent Events plus
// POSTs and edit together with the same convergence, offline merge and exact count of unsaved
// edits as over a WebSocket; behind a proxy that refuses upgrades a page falls back and
// returns to WebSockets once they get through; the latency of an edit reaching the other page
// is measured over both transports and printed.
//
//   DOC_SERVER_BIN=target/debug/doc-server node --test --test-concurrency=1 tests/e2e/fallback.e2e.test.mjs
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { Proxy, Server, caretToEnd, caretToStart, launchBrowser, newDocId, openEditor, waitForStatus, waitForText } from './harness.mjs';

let server;
let browser;

before(async () => {
  server = await Server.start({ extraArgs: ['--no-websocket'] });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

const transportOf = (page) => page.locator('#status').getAttribute('data-transport');

/** Counts the WebSockets and fallback streams the pages of `context` open. */
function watchTransports(context) {
  const counts = { sockets: 0, streams: 0, posts: 0 };
  context.on('page', (page) => {
    page.on('websocket', () => (counts.sockets += 1));
    page.on('request', (request) => {
      if (/\/ws\/[^/]+\/sse$/.test(new URL(request.url()).pathname)) counts.streams += 1;
      if (/\/ws\/[^/]+\/sse\/[0-9a-f]+$/.test(new URL(request.url()).pathname)) counts.posts += 1;
    });
  });
  return counts;
}

/**
 * Milliseconds from an edit in `a` to its arrival in `b`'s document, `samples` times; both
 * clocks are this machine's (`Date.now()` in each page).
 */
async function editLatencies(a, b, samples) {
  const latencies = [];
  await caretToEnd(a);
  for (let i = 0; i < samples; i++) {
    const mark = `<${i}>`;
    const arrived = b.evaluate(
      (mark) =>
        new Promise((resolve) => {
          const check = () => (window.crdtEditor.client.text().includes(mark) ? resolve(Date.now()) : setTimeout(check, 1));
          check();
        }),
      mark,
    );
    const sent = await a.evaluate((mark) => {
      const { view } = window.crdtEditor;
      const at = Date.now();
      const end = view.state.doc.length;
      view.dispatch({ changes: { from: end, insert: mark }, userEvent: 'input.type' });
      return at;
    }, mark);
    latencies.push((await arrived) - sent);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  latencies.sort((x, y) => x - y);
  return { median: latencies[Math.floor(samples / 2)], p90: latencies[Math.floor(samples * 0.9)], max: latencies.at(-1) };
}

test('1. with WebSockets refused, two browsers edit together over SSE + POST and converge', async () => {
  const id = newDocId('fallback');
  const alice = await browser.newContext();
  const bob = await browser.newContext();
  const counts = watchTransports(alice);
  try {
    const started = Date.now();
    const a = await openEditor(alice, server.url, id, 'Alice');
    console.log(`online over the fallback ${Date.now() - started} ms after opening (after refused WebSockets)`);
    const b = await openEditor(bob, server.url, id, 'Bob');
    assert.equal(await transportOf(a), 'sse');
    assert.equal(await transportOf(b), 'sse');
    assert.ok(counts.sockets >= 2, 'WebSockets were tried first');

    await caretToEnd(a);
    await a.keyboard.type('first line\nsecond line');
    await waitForText(b, (t) => t === 'first line\nsecond line');
    await caretToStart(a);
    await a.keyboard.press('End');
    await caretToEnd(b);
    await Promise.all([
      a.keyboard.type(' — alpha 漢字 😀', { delay: 15 }),
      b.keyboard.type(' — beta 👍🏽 done', { delay: 15 }),
    ]);
    const expected = 'first line — alpha 漢字 😀\nsecond line — beta 👍🏽 done';
    await waitForText(a, (t) => t === expected);
    await waitForText(b, (t) => t === expected);
    await waitForStatus(a, 'online');
    await waitForStatus(b, 'online');
    assert.equal((await server.docValue(id)).body, expected);
    // Presence goes over the fallback too.
    await a.locator('#people .person', { hasText: 'Bob' }).waitFor();
    await b.locator('.remote-caret .remote-name', { hasText: 'Alice' }).waitFor();
    assert.ok(counts.posts > 0 && counts.streams >= 1, JSON.stringify(counts));

    const fallback = await editLatencies(a, b, 30);
    console.log(`edit → peer over SSE + POST: median ${fallback.median} ms, p90 ${fallback.p90} ms, max ${fallback.max} ms`);

    // Heartbeats keep an idle fallback session up (the server pings every 2 s; a page answers
    // with an empty POST, or the session closes after two intervals).
    const streams = counts.streams;
    await new Promise((resolve) => setTimeout(resolve, 7000));
    assert.equal(counts.streams, streams, 'no reconnect while idle');
    await caretToEnd(b);
    await b.keyboard.type(' idle');
    await waitForText(a, (t) => t.endsWith(' idle'));
  } finally {
    await alice.close();
    await bob.close();
  }
});

test('2. over the fallback, a page offline keeps an exact count of its edits and merges when back', async () => {
  const id = newDocId('fallback-offline');
  const alice = await browser.newContext();
  const bob = await browser.newContext();
  try {
    const a = await openEditor(alice, server.url, id, 'Alice');
    const b = await openEditor(bob, server.url, id, 'Bob');
    await caretToEnd(a);
    await a.keyboard.type('shared start\n');
    await waitForText(b, (t) => t === 'shared start\n');

    await alice.setOffline(true);
    await waitForStatus(a, 'offline', 5000);
    await caretToEnd(a);
    const offline = 'alice offline\n';
    await a.keyboard.type(offline, { delay: 5 });
    await caretToStart(b);
    await b.keyboard.type('bob online > ', { delay: 5 });
    // One change per keystroke, each kept until the server acknowledges it.
    await a.locator('#status', { hasText: `${offline.length} edits kept on this device` }).waitFor();
    assert.equal(await a.locator('#status').getAttribute('data-pending'), String(offline.length));
    assert.ok(!(await a.evaluate(() => window.crdtEditor.client.text())).includes('bob online'));

    await alice.setOffline(false);
    await waitForStatus(a, 'online', 30000);
    const expected = 'bob online > shared start\nalice offline\n';
    await waitForText(a, (t) => t === expected);
    await waitForText(b, (t) => t === expected);
    assert.equal((await server.docValue(id)).body, expected);
    assert.equal(await transportOf(a), 'sse');
  } finally {
    await alice.close();
    await bob.close();
  }
});

test('3. a page behind a proxy that refuses upgrades falls back, and returns to WebSockets once they get through', async () => {
  const plain = await Server.start();
  const proxy = await Proxy.start({ port: () => plain.port });
  proxy.refuseUpgrades = true;
  const id = newDocId('retry');
  const alice = await browser.newContext();
  const bob = await browser.newContext();
  try {
    const a = await openEditor(alice, proxy.url, id, 'Alice');
    const b = await openEditor(bob, plain.url, id, 'Bob');
    assert.equal(await transportOf(a), 'sse');
    assert.equal(await transportOf(b), 'websocket');
    await a.evaluate(() => {
      // A minute in the page; a second here. The probe timer restarts at the next welcome.
      window.crdtEditor.connection.wsRetryMs = 1000;
      window.crdtEditor.connection.scheduleProbe();
    });
    await caretToEnd(a);
    await a.keyboard.type('over the fallback');
    await waitForText(b, (t) => t === 'over the fallback');
    // Still refused: the probes fail and the page stays on the fallback.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    assert.equal(await transportOf(a), 'sse');

    proxy.refuseUpgrades = false;
    await a.locator('#status[data-transport="websocket"][data-link="up"]').waitFor({ timeout: 10000 });
    await caretToEnd(b);
    await b.keyboard.type(', then a WebSocket');
    await waitForText(a, (t) => t === 'over the fallback, then a WebSocket');
    await caretToEnd(a);
    await a.keyboard.type('!');
    await waitForText(b, (t) => t === 'over the fallback, then a WebSocket!');
    await waitForStatus(a, 'online');
  } finally {
    await alice.close();
    await bob.close();
    await proxy.close();
    await plain.close();
  }
});

test('4. the same latency over a WebSocket, for comparison', async () => {
  const plain = await Server.start();
  const id = newDocId('websocket');
  const alice = await browser.newContext();
  const bob = await browser.newContext();
  try {
    const a = await openEditor(alice, plain.url, id, 'Alice');
    const b = await openEditor(bob, plain.url, id, 'Bob');
    assert.equal(await transportOf(a), 'websocket');
    const socket = await editLatencies(a, b, 30);
    console.log(`edit → peer over a WebSocket: median ${socket.median} ms, p90 ${socket.p90} ms, max ${socket.max} ms`);
  } finally {
    await alice.close();
    await bob.close();
    await plain.close();
  }
});
