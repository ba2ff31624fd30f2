// Browser end-to-end tests of the offline app shell and of the assets' cost on the wire
// (issue 21, must-show 1 and 5):
//
//   DOC_SERVER_BIN=target/debug/doc-server node --test --test-concurrency=1 tests/e2e/offline.e2e.test.mjs
//
// 21.1: a document opened once opens again with the server stopped and the browser offline
// (the service worker's cached page, bundle and wasm; the text from IndexedDB), takes edits,
// and merges them once the server is back.
// 21.5: the bytes a first open and a reopen receive, counted twice: by CDP's Network domain in
// the page (encodedDataLength: headers and body as received) and by a TCP proxy between the
// browser and the server, which also sees the service worker's own requests.
// 21.6: a new build reaches a browser on its next online load: the new service worker takes
// over, the old build's cache is deleted, and the new files are what opens offline.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, gzipSync } from 'node:zlib';

// The server serves a copy of web/dist that test 21.6 may "deploy" a new build into.
const builtDir = process.env.WEB_DIR ?? fileURLToPath(new URL('../../web/dist', import.meta.url));
const webDir = await mkdtemp(path.join(tmpdir(), 'crdt-e2e-web-'));
await cp(builtDir, webDir, { recursive: true });
process.env.WEB_DIR = webDir;
const {
  Server,
  caretToEnd,
  editorText,
  launchBrowser,
  newDocId,
  openEditor,
  waitForLocalSave,
  waitForStatus,
  waitForText,
} = await import('./harness.mjs');

/**
 * Must-show 5's limits, in bytes (KB = 1024 B). A first open is about 249 KB by CDP and 253 KB
 * through the proxy (BENCHMARKS.md "Issue 21"); FIRST_OPEN_LIMIT_KB overrides the limit to
 * measure against another one.
 */
const FIRST_OPEN_GOAL = 250 * 1024;
const FIRST_OPEN_LIMIT = Number(process.env.FIRST_OPEN_LIMIT_KB ?? 250) * 1024;
const REOPEN_LIMIT = 5 * 1024;

let server;
let browser;

before(async () => {
  server = await Server.start();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.close();
  await rm(webDir, { recursive: true, force: true });
});

/** Waits until the page is controlled by an activated service worker (the shell is cached). */
async function shellInstalled(page) {
  await page.evaluate(async () => {
    await navigator.serviceWorker.ready;
    if (!navigator.serviceWorker.controller) {
      await new Promise((resolve) => navigator.serviceWorker.addEventListener('controllerchange', resolve, { once: true }));
    }
  });
}

test('21.1 a document opened before opens offline with the server stopped, takes edits, and merges when the server is back', async () => {
  const id = newDocId('shell');
  const alice = await browser.newContext();
  const bob = await browser.newContext();
  try {
    const page = await openEditor(alice, server.url, id, 'Alice');
    await shellInstalled(page);
    await caretToEnd(page);
    await page.keyboard.type('typed online.');
    await waitForStatus(page, 'online');
    await waitForLocalSave(page);

    // No server and no network: only the browser's own caches and storage are left.
    await server.kill();
    await alice.setOffline(true);
    assert.equal(await page.evaluate(() => navigator.onLine), false, 'the browser says it is offline');

    await page.reload();
    await waitForText(page, (text) => text === 'typed online.', 15000);
    await waitForStatus(page, 'offline', 10000);
    assert.match(await page.locator('#doc-id').textContent(), new RegExp(id));
    await caretToEnd(page);
    await page.keyboard.type(' typed offline.');
    await waitForLocalSave(page);
    await page.locator('#status', { hasText: 'kept on this device' }).waitFor({ timeout: 5000 });

    // A second offline open (a new tab, not a reload) finds the page and the new edit too.
    const tab = await alice.newPage();
    await tab.goto(`${server.url}/d/${id}`);
    await waitForText(tab, (text) => text === 'typed online. typed offline.', 15000);
    await tab.locator('#status', { hasText: 'kept on this device' }).waitFor({ timeout: 10000 });
    await caretToEnd(tab);
    await tab.keyboard.type(' second tab.');
    await waitForLocalSave(tab);
    await waitForText(page, (text) => text === 'typed online. typed offline. second tab.');

    // The server comes back and so does the network: everything merges, nothing is lost.
    await server.restart();
    await alice.setOffline(false);
    await waitForStatus(page, 'online', 30000);
    await waitForStatus(tab, 'online', 30000);
    const expected = 'typed online. typed offline. second tab.';
    const other = await openEditor(bob, server.url, id, 'Bob');
    await waitForText(other, (text) => text === expected);
    assert.equal((await server.docValue(id)).body, expected);
    assert.equal(await editorText(page), expected);
  } finally {
    await alice.close();
    await bob.close();
    if (!server.process) await server.restart();
  }
});

/** A TCP proxy that counts the bytes it hands the browser, per kind of connection. */
async function countingProxy(target) {
  const counts = { http: 0, websocket: 0 };
  const sockets = new Set();
  const proxy = net.createServer((client) => {
    const upstream = net.connect(target.port, '127.0.0.1');
    let kind = null;
    sockets.add(client).add(upstream);
    client.on('data', (chunk) => {
      kind ??= chunk.subarray(0, 8).toString('latin1') === 'GET /ws/' ? 'websocket' : 'http';
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      counts[kind ?? 'http'] += chunk.length;
      client.write(chunk);
    });
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    for (const socket of [client, upstream]) socket.on('error', close).on('close', close);
  });
  await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${proxy.address().port}`,
    counts,
    reset() {
      counts.http = 0;
      counts.websocket = 0;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => proxy.close(resolve));
    },
  };
}

/** Records what a page's requests received (CDP Network), by URL path. */
async function recordNetwork(page) {
  const session = await page.context().newCDPSession(page);
  const requests = new Map();
  session.on('Network.responseReceived', ({ requestId, response }) => {
    requests.set(requestId, {
      path: new URL(response.url).pathname,
      status: response.status,
      encoding: response.headers['content-encoding'] ?? response.headers['Content-Encoding'] ?? '',
      fromServiceWorker: response.fromServiceWorker,
      fromCache: response.fromDiskCache || response.fromPrefetchCache,
      bytes: 0,
    });
  });
  session.on('Network.loadingFinished', ({ requestId, encodedDataLength }) => {
    const request = requests.get(requestId);
    if (request) request.bytes = encodedDataLength;
  });
  await session.send('Network.enable');
  return requests;
}

function table(title, requests) {
  const rows = [...requests.values()].filter((r) => !r.path.startsWith('/ws/'));
  console.log(`  ${title}`);
  for (const r of rows) {
    const via = r.fromServiceWorker ? 'service worker' : r.fromCache ? 'cache' : 'network';
    console.log(`    ${String(r.status).padEnd(4)} ${r.path.padEnd(46)} ${String(r.bytes).padStart(7)} B  ${r.encoding.padEnd(3)} ${via}`);
  }
  return rows;
}

test('21.5 bytes on the wire: a first open receives at most 250 KB, a reopen at most 5 KB of assets', async () => {
  const id = newDocId('bytes');
  const wire = await countingProxy(server);
  const context = await browser.newContext();
  try {
    // First open, in a fresh browser context: no HTTP cache, no service worker.
    const page = await context.newPage();
    const first = await recordNetwork(page);
    await page.goto(`${wire.url}/d/${id}`);
    await waitForStatus(page, 'online');
    await shellInstalled(page);
    const firstRows = table('first open (page)', first);
    const firstCdp = firstRows.reduce((sum, r) => sum + r.bytes, 0);
    const firstWire = wire.counts.http;
    const paths = firstRows.map((r) => r.path);
    for (const kind of [/^\/d\//, /^\/assets\/editor-[A-Z0-9]+\.js$/, /^\/assets\/wasm_client_bg-[A-Z0-9]+\.wasm$/, /^\/assets\/style-[A-Z0-9]+\.css$/]) {
      assert.ok(paths.some((p) => kind.test(p)), `the first open loads ${kind}: ${paths.join(', ')}`);
    }
    for (const r of firstRows.filter((row) => /\.(js|wasm|css)$/.test(row.path))) {
      assert.equal(r.encoding, 'br', `${r.path} arrives brotli-compressed`);
    }
    console.log(`  first open: ${firstCdp} B by CDP in the page, ${firstWire} B through the proxy (service worker's precache included)`);
    if (firstWire > FIRST_OPEN_GOAL) console.log(`  first open is over the 250 KB goal by ${firstWire - FIRST_OPEN_GOAL} B`);
    assert.ok(firstCdp <= FIRST_OPEN_LIMIT, `first open: ${firstCdp} B > ${FIRST_OPEN_LIMIT} B (CDP)`);
    assert.ok(firstWire <= FIRST_OPEN_LIMIT, `first open: ${firstWire} B > ${FIRST_OPEN_LIMIT} B (proxy)`);
    await page.close();

    // Reopen: a new page of the same browser.
    wire.reset();
    const again = await context.newPage();
    const reopen = await recordNetwork(again);
    await again.goto(`${wire.url}/d/${id}`);
    await waitForStatus(again, 'online');
    await again.waitForFunction(() => window.crdtEditor !== undefined);
    const reopenRows = table('reopen (page)', reopen);
    const reopenCdp = reopenRows.filter((r) => !r.fromServiceWorker).reduce((sum, r) => sum + r.bytes, 0);
    const reopenWire = wire.counts.http;
    for (const r of reopenRows.filter((row) => row.path.startsWith('/assets/'))) {
      assert.ok(r.fromServiceWorker || r.fromCache, `${r.path} comes from the service worker or the cache`);
    }
    console.log(`  reopen: ${reopenWire} B through the proxy (the page revalidated with its ETag), ${reopenCdp} B by CDP outside the service worker`);
    assert.ok(reopenWire <= REOPEN_LIMIT, `reopen: ${reopenWire} B > ${REOPEN_LIMIT} B (proxy)`);
    assert.ok(reopenCdp <= REOPEN_LIMIT, `reopen: ${reopenCdp} B > ${REOPEN_LIMIT} B (CDP)`);
    assert.ok(wire.counts.websocket > 0, 'the reopened page synced over its WebSocket (not counted as assets)');
  } finally {
    await context.close();
    await wire.close();
  }
});

/** Writes `name` (relative to the served directory) with its precompressed variants. */
async function deploy(name, text) {
  const file = path.join(webDir, name);
  await writeFile(file, text);
  await writeFile(`${file}.br`, brotliCompressSync(Buffer.from(text)));
  await writeFile(`${file}.gz`, gzipSync(Buffer.from(text)));
}

test('21.6 a new build reaches the browser on its next online load, replaces the old cache, and is what opens offline', async () => {
  const id = newDocId('update');
  const context = await browser.newContext();
  try {
    const page = await openEditor(context, server.url, id, 'Ada');
    await shellInstalled(page);
    const before = await page.evaluate(() => caches.keys());
    assert.equal(before.length, 1, `one cache: ${before}`);
    await caretToEnd(page);
    await page.keyboard.type('kept across builds');
    await waitForStatus(page, 'online');
    await waitForLocalSave(page);

    // "Deploy" a build whose stylesheet changed: a new hashed name, pages and sw.js naming it.
    const manifest = JSON.parse(await readFile(path.join(webDir, 'manifest.json'), 'utf8'));
    const oldStyle = manifest['style.css'];
    const newStyle = oldStyle.replace(/-[A-Z0-9]+\.css$/, '-NEWBUILD2.css');
    const css = `${await readFile(path.join(webDir, oldStyle), 'utf8')}\nbody{--build:"two"}\n`;
    await deploy(newStyle.slice(1), css);
    for (const page of ['editor.html', 'index.html']) {
      await deploy(page, (await readFile(path.join(webDir, page), 'utf8')).replaceAll(oldStyle, newStyle));
    }
    const sw = await readFile(path.join(webDir, 'sw.js'), 'utf8');
    const version = /version:"([0-9a-f]+)"/.exec(sw)[1];
    await deploy('sw.js', sw.replace(version, 'f'.repeat(version.length)).replace(oldStyle, newStyle));

    // The next online load gets the new page, and the browser the new service worker, which
    // precaches the new build and deletes the old one's cache.
    await page.reload();
    await waitForStatus(page, 'online');
    const buildOf = (target) => target.evaluate(() => getComputedStyle(document.body).getPropertyValue('--build').trim());
    assert.equal(await buildOf(page), '"two"');
    const newCache = `shell-${'f'.repeat(version.length)}`;
    for (let waited = 0; ; waited += 100) {
      const keys = await page.evaluate(() => caches.keys());
      if (keys.length === 1 && keys[0] === newCache) break;
      if (waited > 15000) assert.fail(`the caches are ${keys}, not only ${newCache}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const controller = await page.evaluate(() => navigator.serviceWorker.controller?.scriptURL);
    assert.equal(controller, `${server.url}/sw.js`);

    // Offline, the new build is what opens.
    await server.kill();
    await context.setOffline(true);
    await page.reload();
    await waitForText(page, (text) => text === 'kept across builds', 15000);
    assert.equal(await buildOf(page), '"two"');
    await context.setOffline(false);
  } finally {
    await context.close();
    if (!server.process) await server.restart();
  }
});
