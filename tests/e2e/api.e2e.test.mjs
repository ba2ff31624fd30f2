// The HTTP API seen from a browser (issue 21, must-show 4), against a server that requires
// tokens: a program creates a document and edits it with JSON while a person has it open, and
// the person sees every edit live; what the person types is read back as plain text and heard
// over the event stream.
//
//   node --test --test-concurrency=1 tests/e2e/api.e2e.test.mjs
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { Server, caretToEnd, editorText, launchBrowser, waitForStatus, waitForText } from './harness.mjs';

let server;
let browser;

before(async () => {
  server = await Server.start({ secure: true });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

/** `POST /docs`: a new document's id and its edit link's token, as a program gets them. */
async function createDoc() {
  const response = await fetch(`${server.url}/docs`, { method: 'POST' });
  assert.equal(response.status, 201);
  const links = await response.json();
  return { id: links.id, link: links.edit, token: links.edit.split('#')[1] };
}

async function postEdits(id, token, edits) {
  const response = await fetch(`${server.url}/docs/${id}/edits`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ edits }),
  });
  return { status: response.status, body: await response.json() };
}

test('41. create → JSON edits → the open page shows them live; a refused edit changes nothing', async () => {
  const context = await browser.newContext();
  try {
    const { id, link, token } = await createDoc();
    const page = await context.newPage();
    await page.goto(`${server.url}${link}`);
    await waitForStatus(page, 'online');

    let started = Date.now();
    const first = await postEdits(id, token, [
      { op: 'insert', pos: 0, text: 'Hello from a program' },
      { op: 'set', value: 'Made by the API' },
      { op: 'add', value: 'automated' },
    ]);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    await waitForText(page, (t) => t === 'Hello from a program');
    console.log(`JSON insert → visible in the editor: ${Date.now() - started} ms`);
    await page.waitForFunction(() => document.querySelector('#title')?.value === 'Made by the API');
    await page.locator('#tags li[data-tag="automated"]').waitFor();

    // The person types; then the program inserts in the middle, at a character position.
    await caretToEnd(page);
    await page.keyboard.type('!');
    await waitForStatus(page, 'online');
    started = Date.now();
    const second = await postEdits(id, token, [{ op: 'insert', pos: 5, text: ',' }]);
    assert.equal(second.status, 200);
    await waitForText(page, (t) => t === 'Hello, from a program!');
    console.log(`JSON insert into typed text → visible: ${Date.now() - started} ms`);

    // A refused request (out of range) changes nothing, and the page stays online.
    const refused = await postEdits(id, token, [{ op: 'delete', pos: 0, len: 999 }]);
    assert.equal(refused.status, 422);
    assert.match(refused.body.error, /out of bounds/);
    const text = await fetch(`${server.url}/docs/${id}/text`, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(await text.text(), 'Hello, from a program!');
    assert.equal(await editorText(page), 'Hello, from a program!');
    await waitForStatus(page, 'online');
  } finally {
    await context.close();
  }
});

test('42. what a person types reaches an event-stream subscriber, and the past stays readable', async () => {
  const context = await browser.newContext();
  const controller = new AbortController();
  try {
    const { id, link, token } = await createDoc();
    const page = await context.newPage();
    await page.goto(`${server.url}${link}`);
    await waitForStatus(page, 'online');
    const events = await fetch(`${server.url}/docs/${id}/events`, {
      headers: { Authorization: `Bearer ${token}` },
      signal: controller.signal,
    });
    assert.equal(events.status, 200);
    assert.match(events.headers.get('content-type'), /text\/event-stream/);
    const reader = events.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    const nextEvent = async () => {
      for (;;) {
        const end = buffer.indexOf('\n\n');
        if (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const field = (name) => block.split('\n').find((line) => line.startsWith(`${name}:`))?.slice(name.length + 1).trim();
          if (field('data')) return { event: field('event'), id: field('id'), data: JSON.parse(field('data')) };
          continue;
        }
        const { value, done } = await reader.read();
        if (done) throw new Error('the event stream ended');
        buffer += decoder.decode(value, { stream: true });
      }
    };
    const state = await nextEvent();
    assert.equal(state.event, 'state');

    await caretToEnd(page);
    await page.keyboard.type('typed');
    await waitForStatus(page, 'online');
    const read = async (query = '') => {
      const response = await fetch(`${server.url}/docs/${id}/text${query}`, { headers: { Authorization: `Bearer ${token}` } });
      return response.status === 200 ? response.text() : '';
    };
    assert.equal(await read(), 'typed');
    // Events until one reports the typing (the page also counts a view when it opens).
    let change;
    do {
      change = await nextEvent();
      assert.equal(change.event, 'change');
    } while (!change.data.fields.includes('body') || change.data.changes < state.data.changes + 1);
    console.log(`event after typing: ${JSON.stringify(change.data)}`);

    // Every past version of the text is a prefix of what was typed, growing to all of it.
    let latest = change.data.changes;
    while (latest < 100) {
      const next = await fetch(`${server.url}/docs/${id}/text?at=${latest + 1}`, { headers: { Authorization: `Bearer ${token}` } });
      if (next.status !== 200) break;
      latest += 1;
    }
    const texts = [];
    for (let at = 0; at <= latest; at += 1) texts.push(await read(`?at=${at}`));
    assert.equal(texts.at(-1), 'typed');
    for (let i = 1; i < texts.length; i += 1) assert.ok(texts[i].startsWith(texts[i - 1]), JSON.stringify(texts));
    assert.ok(texts.includes('t') || texts.includes('ty'), JSON.stringify(texts));
  } finally {
    controller.abort();
    await context.close();
  }
});
