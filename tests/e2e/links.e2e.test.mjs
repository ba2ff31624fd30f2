// Capability links in the browser (issue 18, must-show 4), against a server that requires
// tokens: a new document opens on its edit link, its view link shows live edits to a second
// browser that cannot change anything, and a dead link says so instead of showing a blank page.
//
//   node --test --test-concurrency=1 tests/e2e/   (scripts/e2e.sh builds everything first)
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { Server, caretToEnd, createFromList, editorText, launchBrowser, waitForStatus, waitForText } from './harness.mjs';

let server;
let browser;

before(async () => {
  server = await Server.start({ secure: true });
  browser = await launchBrowser();
});

async function eventually(check, what, timeout = 10000) {
  const deadline = Date.now() + timeout;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

after(async () => {
  await browser?.close();
  await server?.close();
});

test('11. create → edit link → a second browser on the view link sees live edits but cannot type', async () => {
  const writer = await browser.newContext();
  const viewer = await browser.newContext();
  try {
    // The edit link: the new id, its token in the fragment.
    const { page, id } = await createFromList(writer, server.url);
    await caretToEnd(page);
    await page.keyboard.type('written with the edit link');
    await waitForStatus(page, 'online');

    // The share panel gives the view link.
    await page.getByRole('button', { name: 'Share' }).click();
    const viewLink = await page.locator('#share-view').inputValue();
    assert.match(viewLink, new RegExp(`/d/${id}#v1\\.r\\.`));
    assert.match(await page.locator('#share-edit').inputValue(), /#v1\.w\./);

    const reader = await viewer.newPage();
    await reader.goto(viewLink);
    await waitForStatus(reader, 'online');
    await waitForText(reader, (t) => t === 'written with the edit link');
    await reader.locator('#access', { hasText: 'View only' }).waitFor();
    assert.equal(await reader.locator('.cm-content').getAttribute('contenteditable'), 'false');

    // The reader tries to type, change the title and add a tag: nothing changes anywhere.
    await reader.locator('.cm-content').click();
    await reader.keyboard.type('vandalism');
    assert.equal(await reader.locator('#title').getAttribute('readonly'), '');
    assert.equal(await reader.locator('#tag-form').isHidden(), true);

    // Live edits still arrive.
    await caretToEnd(page);
    await page.keyboard.type(', and more');
    await waitForText(reader, (t) => t === 'written with the edit link, and more');
    const admin = await server.token('*', 'admin');
    assert.equal((await server.docValue(id, admin)).body, 'written with the edit link, and more');
    assert.equal(await editorText(reader), 'written with the edit link, and more');
    await waitForStatus(reader, 'online');
  } finally {
    await writer.close();
    await viewer.close();
  }
});

test('12. an expired or a wrong link shows a clear message, not a blank page', async () => {
  const context = await browser.newContext();
  try {
    const id = 'links-expired';
    const expired = await server.token(id, 'write', '0s');
    const page = await context.newPage();
    await page.goto(`${server.url}/d/${id}#${expired}`);
    await page.locator('#notice', { hasText: 'This link has expired' }).waitFor();
    await page.locator('#status', { hasText: 'Link expired' }).waitFor();

    const other = await server.token('links-other-doc', 'write');
    const wrong = await context.newPage();
    await wrong.goto(`${server.url}/d/${id}#${other}`);
    await wrong.locator('#notice', { hasText: 'does not open this document' }).waitFor();

    const bare = await (await browser.newContext()).newPage();
    await bare.goto(`${server.url}/d/${id}`);
    await bare.locator('#notice', { hasText: 'needs a link' }).waitFor();
    await bare.context().close();
  } finally {
    await context.close();
  }
});

test('16. the list shows titles, last edits and who is here, and renames; a mistyped address creates nothing', async () => {
  const writer = await browser.newContext();
  const viewer = await browser.newContext();
  try {
    // The edit link: the new id, its token in the fragment.
    const { page, id } = await createFromList(writer, server.url);
    await page.locator('#title').fill('Quarterly plan');
    await caretToEnd(page);
    await page.keyboard.type('numbers go here');
    await waitForStatus(page, 'online');
    await page.getByRole('button', { name: 'Share' }).click();
    const viewLink = await page.locator('#share-view').inputValue();
    const reader = await viewer.newPage();
    await reader.goto(viewLink);
    await waitForStatus(reader, 'online');

    await page.getByRole('link', { name: 'All documents' }).click();
    const row = page.locator('#docs li', { hasText: id });
    await row.locator('.doc-title', { hasText: 'Quarterly plan' }).waitFor();
    await row.locator('.doc-meta', { hasText: 'edited just now' }).waitFor();
    await row.locator('.doc-meta', { hasText: '1 person here now' }).waitFor();

    // Renamed from the list: the reader, who has it open, sees the new title at once.
    page.once('dialog', (dialog) => dialog.accept('Plan for the year'));
    await row.getByRole('button', { name: 'Rename Quarterly plan' }).click();
    await row.locator('.doc-title', { hasText: 'Plan for the year' }).waitFor();
    await eventually(async () => (await reader.locator('#title').inputValue()) === 'Plan for the year', 'the new title');

    // A typo in the address: the page says it needs a link, and nothing is created.
    const typo = `${id.slice(0, -1)}${id.endsWith('x') ? 'y' : 'x'}`;
    const lost = await writer.newPage();
    await lost.goto(`${server.url}/d/${typo}`);
    await lost.locator('#notice', { hasText: 'needs a link' }).waitFor();
    const admin = await server.token('*', 'admin');
    const response = await fetch(`${server.url}/docs/${typo}`, { headers: { Authorization: `Bearer ${admin}` } });
    assert.equal(response.status, 404);
    const bad = await fetch(`${server.url}/d/not a document`);
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /No such document/);
  } finally {
    await writer.close();
    await viewer.close();
  }
});
