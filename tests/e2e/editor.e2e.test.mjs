// Browser end-to-end tests: real doc-server, real headless Chromium, people typing.
//
//   node --test --test-concurrency=1 tests/e2e/   (scripts/e2e.sh builds everything first)
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { readFileSync } from 'node:fs';

import { initSync, Client } from '../../web/pkg/wasm_client.js';
import {
  Proxy,
  Server,
  caretToEnd,
  createFromList,
  caretToStart,
  editorText,
  launchBrowser,
  newDocId,
  openEditor,
  waitForLocalSave,
  waitForStatus,
  waitForText,
} from './harness.mjs';

let server;
let browser;

before(async () => {
  server = await Server.start();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

/** A proxy in front of the server, for a page whose network we cut. */
async function proxy() {
  return Proxy.start({ port: () => server.port });
}

const sameText = (a, b) => async () => (await editorText(a)) === (await editorText(b));

async function eventually(check, what, timeout = 20000) {
  const deadline = Date.now() + timeout;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test('1. two people type at the same time, end with the same text, and see each other', async () => {
  const id = newDocId('together');
  const alice = await browser.newContext();
  const bob = await browser.newContext();
  try {
    const a = await openEditor(alice, server.url, id, 'Alice');
    const b = await openEditor(bob, server.url, id, 'Bob');

    await caretToEnd(a);
    await a.keyboard.type('first line\nsecond line');
    await waitForText(b, (t) => t === 'first line\nsecond line');

    // Alice types at the end of the first line while Bob types at the end of the second.
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
    assert.equal((await server.docValue(id)).body, expected);

    // Each sees the other's caret, labelled with the name, and in the presence list.
    await b.locator('.remote-caret .remote-name', { hasText: 'Alice' }).waitFor();
    await a.locator('.remote-caret .remote-name', { hasText: 'Bob' }).waitFor();
    await a.locator('#people .person', { hasText: 'Bob' }).waitFor();
    await b.locator('#people .person', { hasText: 'Alice' }).waitFor();

    // Alice's caret (end of line 1) is drawn on line 1 in Bob's page, and a selection shows.
    const aliceCaretLine = b.locator('.cm-line', { has: b.locator('.remote-name', { hasText: 'Alice' }) });
    assert.match(await aliceCaretLine.innerText(), /alpha/);
    await a.keyboard.press('Shift+Home');
    await b.locator('.remote-selection[data-peer="Alice"]').first().waitFor();

    // Undo takes back only your own typing, everywhere.
    await b.keyboard.press('Control+z');
    const undone = 'first line — alpha 漢字 😀\nsecond line';
    await waitForText(b, (t) => t === undone);
    await waitForText(a, (t) => t === undone);
  } finally {
    await alice.close();
    await bob.close();
  }
});

test('2. a page loses the network, both keep typing, everything merges when it returns', async () => {
  const id = newDocId('partition');
  const net = await proxy();
  const alice = await browser.newContext();
  const bob = await browser.newContext();
  try {
    const a = await openEditor(alice, net.url, id, 'Alice');
    const b = await openEditor(bob, server.url, id, 'Bob');
    await caretToEnd(a);
    await a.keyboard.type('shared start\n');
    await waitForText(b, (t) => t === 'shared start\n');

    net.cut();
    await waitForStatus(a, 'offline', 5000);
    await caretToEnd(a);
    // More than 64 keystrokes: the other page gets them as one long catch-up batch.
    await a.keyboard.type('alice offline 1, typed while the network is cut off\nalice offline 2\n', { delay: 5 });
    await caretToStart(b);
    await b.keyboard.type('bob online > ', { delay: 5 });
    await a.locator('#status', { hasText: 'kept on this device' }).waitFor();
    // Nothing crossed while cut.
    assert.ok(!(await editorText(b)).includes('alice offline'));
    assert.ok(!(await editorText(a)).includes('bob online'));

    net.restore();
    await waitForStatus(a, 'online', 30000);
    const expected = 'bob online > shared start\nalice offline 1, typed while the network is cut off\nalice offline 2\n';
    await waitForText(a, (t) => t === expected);
    await waitForText(b, (t) => t === expected);
    assert.equal((await server.docValue(id)).body, expected);
  } finally {
    await alice.close();
    await bob.close();
    await net.close();
  }
});

test('3. an edit made offline survives a reload while still offline, then merges', async () => {
  const id = newDocId('reload');
  const net = await proxy();
  const alice = await browser.newContext();
  const bob = await browser.newContext();
  try {
    let a = await openEditor(alice, net.url, id, 'Alice');
    const b = await openEditor(bob, server.url, id, 'Bob');
    await caretToEnd(a);
    await a.keyboard.type('saved online.');
    await waitForText(b, (t) => t === 'saved online.');

    net.cut();
    await waitForStatus(a, 'offline', 5000);
    await caretToEnd(a);
    await a.keyboard.type(' typed offline.');
    await waitForLocalSave(a);

    // Reload while the WebSocket is still blocked: the page comes back with the local text.
    await a.reload();
    await waitForText(a, (t) => t === 'saved online. typed offline.', 10000);
    await waitForStatus(a, 'offline', 5000);
    await a.locator('#status', { hasText: 'kept on this device' }).waitFor();
    await caretToEnd(a);
    await a.keyboard.type(' after reload.');
    await caretToStart(b);
    await b.keyboard.type('Bob: ');

    net.restore();
    await waitForStatus(a, 'online', 30000);
    const expected = 'Bob: saved online. typed offline. after reload.';
    await waitForText(a, (t) => t === expected);
    await waitForText(b, (t) => t === expected);
    assert.equal((await server.docValue(id)).body, expected);
  } finally {
    await alice.close();
    await bob.close();
    await net.close();
  }
});

test('4. title, tags, likes and views converge between two pages', async () => {
  const id = newDocId('fields');
  const alice = await browser.newContext();
  const bob = await browser.newContext();
  try {
    const a = await openEditor(alice, server.url, id, 'Alice');
    const b = await openEditor(bob, server.url, id, 'Bob');
    // Two page opens, two views, seen by both.
    await a.locator('#views', { hasText: /^2$/ }).waitFor();
    await b.locator('#views', { hasText: /^2$/ }).waitFor();

    await a.locator('#title').fill('Trip plan');
    await b.locator('#title').waitFor();
    await eventually(async () => (await b.locator('#title').inputValue()) === 'Trip plan', 'title on Bob');

    await b.locator('#tag-input').fill('travel');
    await b.locator('#tag-input').press('Enter');
    await b.locator('#tag-input').fill('2025');
    await b.getByRole('button', { name: 'Add' }).click();
    await a.locator('#tag-input').fill('food');
    await a.locator('#tag-input').press('Enter');
    await a.locator('.tag[data-tag="2025"]').waitFor();
    await a.getByRole('button', { name: 'Remove tag 2025' }).click();
    // The keyboard stays in the tags: on the next tag's button or the new-tag box.
    assert.ok(await a.evaluate(() => document.activeElement?.matches('.remove-tag, #tag-input')), 'focus kept');

    await a.locator('#like').click();
    await b.locator('#like').click();
    await a.locator('#likes', { hasText: /^2$/ }).waitFor();
    await b.locator('#like').click(); // Bob takes his like back.

    for (const page of [a, b]) {
      await eventually(
        async () => (await page.locator('.tag').evaluateAll((tags) => tags.map((t) => t.dataset.tag).join(','))) === 'food,travel',
        'tags food,travel',
      );
      await page.locator('#likes', { hasText: /^1$/ }).waitFor();
      await page.locator('#views', { hasText: /^2$/ }).waitFor();
    }
    assert.equal(await a.locator('#title').inputValue(), 'Trip plan');
    assert.equal(await a.locator('#like').getAttribute('aria-pressed'), 'true');
    assert.equal(await b.locator('#like').getAttribute('aria-pressed'), 'false');
    await eventually(async () => (await server.docValue(id)).likes === 1, 'server likes');
    const value = await server.docValue(id);
    assert.deepEqual(
      { title: value.title, tags: value.tags, likes: value.likes, views: value.views },
      { title: 'Trip plan', tags: ['food', 'travel'], likes: 1, views: 2 },
    );
  } finally {
    await alice.close();
    await bob.close();
  }
});

test('5. the status shows offline within seconds of losing the server, and online after', async () => {
  const id = newDocId('status');
  const context = await browser.newContext();
  try {
    const page = await openEditor(context, server.url, id, 'Carol');
    await caretToEnd(page);
    await page.keyboard.type('before the crash');
    await waitForText(page, (t) => t === 'before the crash');
    await waitForStatus(page, 'online');

    const lost = Date.now();
    await server.kill();
    await waitForStatus(page, 'offline', 5000);
    const noticed = Date.now() - lost;
    assert.ok(noticed < 5000, `offline shown after ${noticed} ms`);

    await page.keyboard.type(' and during');
    await page.locator('#status', { hasText: 'Reconnecting' }).waitFor();
    await page.locator('#status', { hasText: 'edits kept on this device' }).waitFor();

    await server.restart();
    await waitForStatus(page, 'online', 30000);
    assert.equal(await page.locator('#status').innerText(), 'Saved');
    assert.equal((await server.docValue(id)).body, 'before the crash and during');
  } finally {
    await context.close();
  }
});

test('6. two tabs of one browser stay in sync through BroadcastChannel while offline', async () => {
  const id = newDocId('tabs');
  const net = await proxy();
  const context = await browser.newContext();
  try {
    const one = await openEditor(context, net.url, id, 'Dana');
    const two = await openEditor(context, net.url, id);
    net.cut();
    await waitForStatus(one, 'offline', 5000);
    await waitForStatus(two, 'offline', 5000);
    await caretToEnd(one);
    await one.keyboard.type('typed in tab one');
    await waitForText(two, (t) => t === 'typed in tab one', 5000);
    await caretToEnd(two);
    await two.keyboard.type(', and in tab two');
    await waitForText(one, (t) => t === 'typed in tab one, and in tab two', 5000);

    net.restore();
    await waitForStatus(one, 'online', 30000);
    await waitForStatus(two, 'online', 30000);
    await eventually(sameText(one, two), 'both tabs equal');
    await eventually(async () => (await server.docValue(id)).body === 'typed in tab one, and in tab two', 'server text');
  } finally {
    await context.close();
    await net.close();
  }
});

test('7. a newcomer creates a document from the list and finds it there afterwards', async () => {
  const context = await browser.newContext();
  try {
    // The edit link: the new id, its token in the fragment.
    const { page, id } = await createFromList(context, server.url);
    await caretToEnd(page);
    await page.keyboard.type('my first document');
    await waitForStatus(page, 'online');
    await page.getByRole('link', { name: 'All documents' }).click();
    await page.locator('#docs a', { hasText: id }).click();
    await waitForText(page, (t) => t === 'my first document');
  } finally {
    await context.close();
  }
});

// Frames for a hand-made connection, from the same wasm client the page runs.
initSync({ module: readFileSync(new URL('../../web/pkg/wasm_client_bg.wasm', import.meta.url)) });

/**
 * Opens a WebSocket from a blank page of `context` and says `hello`; returns the variant of the
 * server's first message (0: Welcome, 5: Error). The socket stays open as `window.squat`.
 */
async function rawHello(context, id, hello) {
  const page = await context.newPage();
  await page.goto(`${server.url}/`);
  const url = `${server.url.replace('http', 'ws')}/ws/${id}`;
  return page.evaluate(
    async ({ url, hello }) => {
      const ws = new WebSocket(url);
      ws.binaryType = 'arraybuffer';
      window.squat = ws;
      await new Promise((resolve) => (ws.onopen = resolve));
      ws.send(new Uint8Array(hello));
      const first = await new Promise((resolve) => (ws.onmessage = (m) => resolve(new Uint8Array(m.data))));
      return first[2];
    },
    { url, hello: [...hello] },
  );
}

test('10. a page whose replica id is still held on the server edits as a new one and loses nothing', async () => {
  const id = newDocId('remint');
  const net = await proxy();
  const alice = await browser.newContext();
  const other = await browser.newContext();
  try {
    const a = await openEditor(alice, net.url, id, 'Alice');
    await caretToEnd(a);
    await a.keyboard.type('before');
    await eventually(async () => (await server.docValue(id))?.body === 'before', 'the first edit on the server');
    const first = await a.evaluate(() => window.crdtEditor.client.replica);
    const secret = await a.evaluate(() => [...window.crdtEditor.client.author]);

    net.cut();
    await waitForStatus(a, 'offline', 5000);
    await caretToEnd(a);
    await a.keyboard.type(' offline');
    await waitForLocalSave(a);

    // Someone else cannot take the replica id: it belongs to Alice's secret.
    const stranger = Client.openAs(first);
    assert.equal(await rawHello(other, id, stranger.helloFrame('Mallory', '#000')), 5, 'refused');
    // A connection with Alice's own secret (her previous socket, as the server would still see
    // it before the heartbeat notices it is dead) holds the id while she comes back.
    const stale = Client.openAs(first);
    stale.setAuthor(Uint8Array.from(secret));
    assert.equal(await rawHello(other, id, stale.helloFrame('Alice', '#000')), 0, 'welcomed');

    net.restore();
    await waitForStatus(a, 'online', 30000);
    const now = await a.evaluate(() => window.crdtEditor.client.replica);
    assert.notEqual(now, first, 'the page edits as a new replica id');
    await eventually(async () => (await server.docValue(id))?.body === 'before offline', 'the offline edit on the server');
    await caretToEnd(a);
    await a.keyboard.type('!');
    await eventually(async () => (await server.docValue(id))?.body === 'before offline!', 'the next edit on the server');
    assert.equal(await a.evaluate(() => window.crdtEditor.client.pendingCount()), 0);
    const version = await a.evaluate(() => window.crdtEditor.client.version());
    assert.ok(version[first] > 0, 'the old id keeps its changes (the offline ones included, as the text shows)');
    assert.ok(version[now] >= 1, 'the new id\'s change');
    // The connection that held the id was never closed for it.
    const open = await other.pages().at(-1).evaluate(() => window.squat.readyState);
    assert.equal(open, 1);
  } finally {
    await alice.close();
    await other.close();
    await net.close();
  }
});

test('13. Ctrl+F searches and replaces in the whole text; Ctrl+S says where the edits are', async () => {
  const id = newDocId('search');
  const context = await browser.newContext();
  try {
    const page = await openEditor(context, server.url, id, 'Sam');
    assert.equal(await page.locator('.cm-content').getAttribute('spellcheck'), 'true');
    await caretToEnd(page);
    // Far more lines than the screen shows: the browser's find would miss the last ones.
    const text = Array.from({ length: 300 }, (_, i) => (i % 100 === 99 ? 'alpha beta' : `line ${i}`)).join('\n');
    await page.evaluate((text) => window.crdtEditor.view.dispatch({ changes: { from: 0, insert: text } }), text);
    await waitForStatus(page, 'online');

    await page.keyboard.press('Control+f');
    await page.locator('.cm-search input[name=search]').fill('alpha');
    await page.locator('.cm-search input[name=replace]').fill('gamma');
    await page.locator('.cm-search button[name=replaceAll]').click();
    const expected = text.replaceAll('alpha', 'gamma');
    // The whole text, not only the lines on screen (CodeMirror renders just those).
    const whole = () => page.evaluate(() => window.crdtEditor.view.state.doc.toString());
    await eventually(async () => (await whole()) === expected, 'every match replaced');
    await waitForStatus(page, 'online');
    assert.equal((await server.docValue(id)).body, expected);

    let dialogs = 0;
    page.on('dialog', (dialog) => {
      dialogs += 1;
      dialog.dismiss();
    });
    await page.locator('.cm-content').click();
    await page.keyboard.press('Control+s');
    await page.locator('#notice', { hasText: 'save as you type' }).waitFor();
    assert.equal(dialogs, 0);
  } finally {
    await context.close();
  }
});

test('14. a calm status: no flicker while typing over a slow link, offline at once, a dropped peer leaves within 5 s', async () => {
  const id = newDocId('calm');
  const net = await proxy();
  net.delayMs = 100;
  const alice = await browser.newContext();
  const bob = await browser.newContext();
  try {
    const a = await openEditor(alice, net.url, id, 'Alice');
    const b = await openEditor(bob, server.url, id, 'Bob');
    await b.locator('#people .person', { hasText: 'Alice' }).waitFor();

    // Every text the pill shows, with its time, recorded in the page.
    await a.evaluate(() => {
      window.statusLog = [];
      const pill = document.querySelector('#status');
      new MutationObserver(() => window.statusLog.push([performance.now(), pill.textContent])).observe(pill, {
        childList: true,
        characterData: true,
        subtree: true,
      });
    });
    await caretToEnd(a);
    await a.keyboard.type('ten keys a second over a link with 100 ms each way, for five seconds.'.slice(0, 50), {
      delay: 100,
    });
    await waitForStatus(a, 'online');
    const log = await a.evaluate(() => window.statusLog);
    for (let i = 1; i < log.length; i++) {
      assert.ok(log[i][0] - log[i - 1][0] >= 490, `the status changed twice within ${log[i][0] - log[i - 1][0]} ms`);
    }
    console.log(`  status texts while typing 50 keys at 10/s with 100 ms latency: ${JSON.stringify(log.map(([, t]) => t))}`);

    // Alice's network goes silent (no close, no reset): Bob sees her leave within 5 s.
    const silenced = Date.now();
    net.silent = true;
    await b.locator('#people .person', { hasText: 'Alice' }).waitFor({ state: 'detached', timeout: 5000 });
    const gone = Date.now() - silenced;
    console.log(`  a silent peer left Bob's list after ${gone} ms`);
    assert.ok(gone <= 5000, `${gone} ms`);

    // Bob's browser goes offline: his pill says so within 2 s.
    const cut = Date.now();
    await bob.setOffline(true);
    await waitForStatus(b, 'offline', 2000);
    await b.locator('#status', { hasText: 'Offline' }).waitFor({ timeout: 2000 });
    console.log(`  "Offline" shown ${Date.now() - cut} ms after the browser went offline`);
    await bob.setOffline(false);
    await waitForStatus(b, 'online', 30000);
  } finally {
    await alice.close();
    await bob.close();
    await net.close();
  }
});

test('15. axe-core finds no serious or critical accessibility problem on the list or the editor', async () => {
  const axe = readFileSync(new URL('../../web/node_modules/axe-core/axe.min.js', import.meta.url), 'utf8');
  const audit = async (page) => {
    await page.addScriptTag({ content: axe });
    return page.evaluate(async () =>
      (await window.axe.run(document)).violations
        .filter((v) => v.impact === 'serious' || v.impact === 'critical')
        .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`),
    );
  };
  const id = newDocId('a11y');
  const alice = await browser.newContext();
  const bob = await browser.newContext();
  try {
    const list = await alice.newPage();
    await list.goto(`${server.url}/`);
    await list.locator('#docs li').first().waitFor();
    assert.deepEqual(await audit(list), [], 'the document list');

    // The editor in its busiest state: empty (placeholder), someone else's named caret, every
    // label colour, the share panel open.
    const a = await openEditor(alice, server.url, id, 'Alice');
    const b = await openEditor(bob, server.url, id, 'Bob');
    await a.locator('.remote-caret .remote-name', { hasText: 'Bob' }).waitFor();
    await a.getByRole('button', { name: 'Share' }).click();
    await a.locator('#share-links .share-row').first().waitFor();
    assert.deepEqual(await audit(a), [], 'the editor');
    // Screen readers hear who came, from a live region, not the carets inside the text.
    await a.locator('#people-live', { hasText: 'Bob joined' }).waitFor();
    assert.equal(await a.locator('.remote-caret').first().getAttribute('aria-hidden'), 'true');
    await caretToEnd(b);
    await b.keyboard.type('hello');
    await waitForText(a, (t) => t === 'hello');
    assert.deepEqual(await audit(a), [], 'the editor with text');
  } finally {
    await alice.close();
    await bob.close();
  }
});

test('17. history: every version of three sessions by two people, with its authors; restore brings a deleted paragraph back', async () => {
  const id = newDocId('history');
  const alice = await browser.newContext();
  const bob = await browser.newContext();
  try {
    const a = await openEditor(alice, server.url, id, 'Alice');
    const b = await openEditor(bob, server.url, id, 'Bob');
    const texts = [];
    // Session 1: Alice writes a paragraph.
    await caretToEnd(a);
    await a.keyboard.type('First paragraph by Alice.\n');
    await waitForStatus(a, 'online');
    await waitForText(b, (t) => t === 'First paragraph by Alice.\n');
    texts.push(await editorText(a));
    // Session 2: Bob adds his.
    await caretToEnd(b);
    await b.keyboard.type('Second paragraph by Bob.');
    await waitForStatus(b, 'online');
    await waitForText(a, (t) => t.endsWith('by Bob.'));
    texts.push(await editorText(b));
    // Session 3: Alice deletes her paragraph and writes another.
    await caretToStart(a);
    await a.keyboard.press('Shift+End');
    await a.keyboard.press('Backspace');
    await a.keyboard.type('Third, by Alice again.');
    await waitForStatus(a, 'online');
    await waitForText(b, (t) => t.startsWith('Third'));
    texts.push(await editorText(a));
    assert.deepEqual(texts, [
      'First paragraph by Alice.\n',
      'First paragraph by Alice.\nSecond paragraph by Bob.',
      'Third, by Alice again.\nSecond paragraph by Bob.',
    ]);

    // Bob opens the history and walks the slider from the first version to the last.
    await b.getByRole('button', { name: 'History' }).click();
    await b.locator('#history-label', { hasText: ' of ' }).waitFor();
    const slider = b.locator('#history-slider');
    const count = Number(await slider.getAttribute('max'));
    const seen = new Map();
    for (let version = 1; version <= count; version++) {
      await slider.fill(String(version));
      await b.locator('#history-label', { hasText: `${version} of ${count}` }).waitFor();
      const text = await b.locator('#history-text').textContent();
      const authors = await b.locator('#history-label').textContent();
      if (!seen.has(text)) seen.set(text, { version, authors });
    }
    for (const text of texts) assert.ok(seen.has(text), `the history shows ${JSON.stringify(text)}`);
    assert.match(seen.get(texts[0]).authors, /Alice/);
    assert.match(seen.get(texts[1]).authors, /Bob/);
    assert.match(seen.get(texts[2]).authors, /Alice/);
    // Who wrote each passage.
    await slider.fill(String(count));
    await b.locator(`#history-label`, { hasText: `${count} of ${count}` }).waitFor();
    assert.equal(await b.locator('#history-text .passage[data-author="Bob"]').textContent(), 'Second paragraph by Bob.');
    assert.match(await b.locator('#history-text .passage[data-author="Alice"]').first().textContent(), /Third/);

    // Restore the version with Alice's first paragraph: it is back for everyone.
    await slider.fill(String(seen.get(texts[1]).version));
    await b.locator('#history-label', { hasText: `${seen.get(texts[1]).version} of ${count}` }).waitFor();
    await b.getByRole('button', { name: 'Restore this version' }).click();
    await waitForText(a, (t) => t === texts[1]);
    await waitForStatus(b, 'online');
    assert.equal((await server.docValue(id)).body, texts[1]);
  } finally {
    await alice.close();
    await bob.close();
  }
});

test('18. one entry per person across tabs, names shown while their person is busy, header in view, monospace on request', async () => {
  const id = newDocId('comfort');
  const alice = await browser.newContext();
  const bob = await browser.newContext();
  try {
    const a1 = await openEditor(alice, server.url, id, 'Alice');
    const a2 = await alice.newPage();
    await a2.goto(`${server.url}/d/${id}`);
    await waitForStatus(a2, 'online');
    const b = await openEditor(bob, server.url, id, 'Bob');
    await b.locator('#people .person', { hasText: 'Alice (2 tabs)' }).waitFor();
    assert.equal(await b.locator('#people .person', { hasText: 'Alice' }).count(), 1);
    await a1.locator('#people .me', { hasText: '(you, 2 tabs)' }).waitFor();
    await a2.close();

    // Alice types: Bob sees her name by her caret, which fades once she has been still a while.
    await caretToEnd(a1);
    await a1.keyboard.type('busy here');
    const label = b.locator('.remote-caret', { has: b.locator('.remote-name', { hasText: 'Alice' }) });
    await b.locator('.remote-caret.recent .remote-name', { hasText: 'Alice' }).waitFor();
    await b.waitForFunction(() => !document.querySelector('.remote-caret.recent'), null, { timeout: 6000 });
    // Faded out (after its 0.3 s transition).
    await label.locator('.remote-name').evaluate(
      (el) =>
        new Promise((resolve, reject) => {
          const deadline = performance.now() + 2000;
          const check = () => {
            if (getComputedStyle(el).opacity === '0') return resolve();
            if (performance.now() > deadline) return reject(new Error(`opacity ${getComputedStyle(el).opacity}`));
            requestAnimationFrame(check);
          };
          check();
        }),
    );

    // A long document scrolled down: the header (status, share, history) is still at the top.
    await b.evaluate(() => {
      const view = window.crdtEditor.view;
      view.dispatch({ changes: { from: view.state.doc.length, insert: '\nline'.repeat(300) } });
    });
    await b.mouse.wheel(0, 5000);
    await b.waitForFunction(() => window.scrollY > 500);
    const top = await b.locator('header').evaluate((el) => el.getBoundingClientRect().top);
    assert.equal(top, 0);

    // Monospace on request, remembered.
    await b.getByRole('button', { name: 'Monospace' }).click();
    const font = await b.locator('.cm-content').evaluate((el) => getComputedStyle(el).fontFamily);
    assert.match(font, /mono/i);
    await b.reload();
    await b.locator('#editor.mono').waitFor();
  } finally {
    await alice.close();
    await bob.close();
  }
});
