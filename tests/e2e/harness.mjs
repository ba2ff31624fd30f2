// Test harness for the browser end-to-end tests: the real doc-server binary on a free port with
// a temporary data directory, a TCP proxy that can cut one page's WebSocket traffic, and
// headless Debian Chromium driven by playwright-core (never a downloaded browser).
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

const root = path.resolve(fileURLToPath(new URL('../..', import.meta.url)));
// playwright-core is a dev dependency of web/ (installed by `npm ci` there).
const { chromium } = createRequire(path.join(root, 'web', 'package.json'))('playwright-core');

export const SERVER_BIN = process.env.DOC_SERVER_BIN ?? path.join(root, 'target', 'debug', 'doc-server');
export const WEB_DIR = process.env.WEB_DIR ?? path.join(root, 'web', 'dist');
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** The doc-server process; `stop()` and `start()` again keep the port and the data. */
export class Server {
  /** `secure`: access tokens required (links); otherwise `--open`. `extraArgs`: more flags. */
  static async start({ secure = false, extraArgs = [] } = {}) {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'crdt-e2e-'));
    const server = new Server(dataDir, secure, extraArgs);
    await server.start('127.0.0.1:0');
    return server;
  }

  constructor(dataDir, secure = false, extraArgs = []) {
    this.dataDir = dataDir;
    this.secure = secure;
    this.extraArgs = extraArgs;
    this.process = null;
    this.addr = null;
    this.log = [];
  }

  get url() {
    return `http://${this.addr}`;
  }

  get port() {
    return Number(this.addr.split(':').pop());
  }

  async start(listen = this.addr) {
    const child = spawn(
      SERVER_BIN,
      [
        ...(this.secure ? [] : ['--open']),
        ...['--listen', listen, '--data-dir', this.dataDir, '--web-dir', WEB_DIR, '--shutdown-timeout', '2s'],
        ...this.extraArgs,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' } },
    );
    this.process = child;
    child.stderr.on('data', (chunk) => this.log.push(chunk.toString()));
    this.addr = await new Promise((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`doc-server did not start:\n${this.log.join('')}`)), 15000);
      child.stdout.on('data', (chunk) => {
        out += chunk.toString();
        const match = out.match(/listening on (\S+)/);
        if (match) {
          clearTimeout(timer);
          resolve(match[1]);
        }
      });
      child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`doc-server exited with ${code}:\n${this.log.join('')}`));
      });
    });
    return this;
  }

  /** Kills the process at once (as a crash or a lost machine would) and waits for its exit. */
  async kill(signal = 'SIGKILL') {
    const child = this.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await exited;
    this.process = null;
  }

  async restart() {
    // The port was ours a moment ago; retry briefly in case the kernel still holds it.
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.start(this.addr);
      } catch (error) {
        if (attempt >= 20) throw error;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
  }

  /** A token from `doc-server token` (signed with this server's secret, in its data dir). */
  async token(id, role = 'write', expiresIn = '1h') {
    const { stdout } = await execFileAsync(SERVER_BIN, [
      'token', '--doc', id, '--role', role, '--expires-in', expiresIn, '--data-dir', this.dataDir,
    ]);
    return stdout.split('\n')[0].trim();
  }

  async docValue(id, token) {
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    const response = await fetch(`${this.url}/docs/${id}`, { headers });
    if (!response.ok) throw new Error(`GET /docs/${id}: ${response.status}`);
    return response.json();
  }

  async close() {
    await this.kill('SIGTERM');
    await rm(this.dataDir, { recursive: true, force: true });
  }
}

/**
 * A TCP proxy in front of the server. Pages opened through it can be cut off: `cut()` closes
 * their WebSockets and refuses new ones, while plain HTTP (the page, its scripts, the wasm)
 * still goes through, so a page can even be reloaded while "offline".
 */
export class Proxy {
  static async start(target) {
    const proxy = new Proxy(target);
    await new Promise((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  constructor(target) {
    this.target = target; // { port }
    this.blocked = false;
    /** WebSocket bytes are dropped without closing anything (a network that went silent). */
    this.silent = false;
    /** Added to every WebSocket chunk, each way (ms). */
    this.delayMs = 0;
    /** WebSocket upgrades are answered 403 (as a proxy that refuses them); plain HTTP, the
     * fallback transport's included, goes through. */
    this.refuseUpgrades = false;
    this.sockets = new Set(); // [client, upstream, state]
    this.server = net.createServer((client) => this.accept(client));
  }

  get url() {
    return `http://127.0.0.1:${this.server.address().port}`;
  }

  accept(client) {
    const upstream = net.connect(this.target.port(), '127.0.0.1');
    const pair = { client, upstream, websocket: false };
    this.sockets.add(pair);
    const close = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(pair);
    };
    const forward = (to, chunk) => {
      if (pair.websocket && this.silent) return;
      if (pair.websocket && this.delayMs > 0) {
        setTimeout(() => to.destroyed || to.write(chunk), this.delayMs);
      } else {
        to.write(chunk);
      }
    };
    client.on('data', (chunk) => {
      const head = chunk.subarray(0, 8).toString('latin1') === 'GET /ws/';
      if (head && this.refuseUpgrades && /\r\nupgrade:\s*websocket/i.test(chunk.toString('latin1'))) {
        client.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
        upstream.destroy();
        this.sockets.delete(pair);
        return;
      }
      if (head) pair.websocket = true;
      if (pair.websocket && this.blocked) return close();
      forward(upstream, chunk);
    });
    upstream.on('data', (chunk) => {
      if (pair.websocket && this.blocked) return close();
      forward(client, chunk);
    });
    client.on('error', close);
    upstream.on('error', close);
    client.on('close', close);
    upstream.on('close', close);
  }

  /** Drops every WebSocket going through and refuses new ones until `restore()`. */
  cut() {
    this.blocked = true;
    for (const pair of this.sockets) {
      if (pair.websocket) {
        pair.client.destroy();
        pair.upstream.destroy();
        this.sockets.delete(pair);
      }
    }
  }

  restore() {
    this.blocked = false;
  }

  async close() {
    for (const pair of this.sockets) {
      pair.client.destroy();
      pair.upstream.destroy();
    }
    await new Promise((resolve) => this.server.close(resolve));
  }
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run', '--disable-dev-shm-usage'],
  });
}

/** A new document id, unique per test run. */
export function newDocId(label) {
  return `${label}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
}

/**
 * Opens the editor for `docId` at `baseUrl` in a page of `context`, waits until it is online,
 * and sets the person's name the way a person does: typing it into the name box.
 */
export async function openEditor(context, baseUrl, docId, name) {
  const page = await context.newPage();
  page.on('pageerror', (error) => console.error(`[page ${name}] ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') console.error(`[console ${name}] ${message.text()}`);
  });
  await page.goto(`${baseUrl}/d/${docId}`);
  await waitForStatus(page, 'online');
  if (name) {
    await page.locator('#name').fill(name);
    await page.locator('#name').press('Enter');
    await waitForStatus(page, 'online');
  }
  return page;
}

/**
 * Creates a document the way a newcomer does: the list's New document button. Waits for its
 * editor on the edit link (`#v1.w.…` when the server makes tokens) and for it to be online;
 * returns the page and the document id.
 */
export async function createFromList(context, baseUrl) {
  const page = await context.newPage();
  await page.goto(`${baseUrl}/`);
  await page.getByRole('button', { name: 'New document' }).click();
  await page.waitForURL(/\/d\/[A-Za-z0-9_-]+#v1\.w\./);
  const id = decodeURIComponent(new URL(page.url()).pathname.slice(3));
  await waitForStatus(page, 'online');
  return { page, id };
}

/** The text as the page shows it: the editor's lines, without the other people's name labels. */
export function editorText(page) {
  return page.locator('.cm-content').evaluate((content) =>
    [...content.querySelectorAll('.cm-line')]
      .map((line) => {
        const copy = line.cloneNode(true);
        for (const widget of copy.querySelectorAll('.remote-caret')) widget.remove();
        return copy.textContent;
      })
      .join('\n'),
  );
}

/** Waits until everything typed so far is saved in this browser (IndexedDB). */
export async function waitForLocalSave(page) {
  await page.locator('#status[data-local="saved"]').waitFor({ timeout: 10000 });
}

/**
 * Waits until the status pill shows `state`; 'online' also waits until every edit is
 * acknowledged (the pill keeps showing "Saved" through short saves, see lib/status.js).
 */
export async function waitForStatus(page, state, timeout = 20000) {
  const settled = state === 'online' ? '[data-link="up"][data-pending="0"]' : '';
  await page.locator(`#status[data-state="${state}"]${settled}`).waitFor({ timeout });
}

/** Puts the caret at the end of the text, as Ctrl+End does. */
export async function caretToEnd(page) {
  await page.locator('.cm-content').click();
  await page.keyboard.press('Control+End');
}

export async function caretToStart(page) {
  await page.locator('.cm-content').click();
  await page.keyboard.press('Control+Home');
}

/** Waits until `predicate(text)` holds for the editor's text; returns the text. */
export async function waitForText(page, predicate, timeout = 20000) {
  const deadline = Date.now() + timeout;
  let text;
  for (;;) {
    text = await editorText(page);
    if (predicate(text)) return text;
    if (Date.now() > deadline) throw new Error(`editor text did not match in ${timeout} ms; it is ${JSON.stringify(text)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
