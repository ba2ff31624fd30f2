// The connection to the document server: reconnects forever with capped, jittered exponential
// backoff (see backoff.js). It knows nothing of the protocol; the page says when a connection
// is "joined" (Welcome received), which resets the backoff.
//
// Two transports carry the same frames: a WebSocket, and the fallback (sse-link.js: Server-Sent
// Events plus POSTs) for networks whose proxies refuse WebSockets. The connection falls back
// after `WS_FAILURES_BEFORE_FALLBACK` WebSockets in a row closed before they opened (an upgrade
// refused or cut while plain HTTP works), and while on the fallback tries a WebSocket again
// every `WS_RETRY_MS`: once one opens, the next connection is a WebSocket again. When the
// fallback fails to open too, the network itself is down: the next attempt is a WebSocket.

import { backoffDelay } from './backoff.js';
import { SseLink } from './sse-link.js';

/** A connection that opened but was not welcomed within this time is dropped and retried. */
const JOIN_TIMEOUT_MS = 10000;
/** WebSockets in a row that close before opening, before the fallback is used. */
export const WS_FAILURES_BEFORE_FALLBACK = 2;
/** While on the fallback, a WebSocket is tried again this often. */
export const WS_RETRY_MS = 60000;

/** A WebSocket with the surface of an `SseLink`. */
class SocketLink {
  constructor(url) {
    this.url = url;
    this.onopen = () => {};
    this.onframe = () => {};
    /** `opened`: whether the socket had opened (false: the upgrade failed). */
    this.onclose = () => {};
    this.socket = null;
  }

  get isOpen() {
    return this.socket !== null && this.socket.readyState === WebSocket.OPEN;
  }

  start() {
    let socket;
    try {
      socket = new WebSocket(this.url);
    } catch (error) {
      console.warn('websocket', error);
      queueMicrotask(() => this.onclose(undefined, false));
      return;
    }
    socket.binaryType = 'arraybuffer';
    this.socket = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      this.onopen();
    };
    socket.onmessage = (message) => {
      if (message.data instanceof ArrayBuffer) this.onframe(new Uint8Array(message.data));
    };
    socket.onclose = (event) => this.onclose(event.code, opened);
  }

  send(bytes) {
    if (!this.isOpen) return false;
    this.socket.send(bytes);
    return true;
  }

  close() {
    if (!this.socket) return;
    this.socket.onclose = null;
    this.socket.close();
  }
}

export class Connection {
  /**
   * @param {object} options
   * @param {string} options.url the WebSocket address (`ws(s)://host/ws/{id}`)
   * @param {string} options.fallbackUrl the fallback's address (`http(s)://host/ws/{id}/sse`)
   * @param {() => void} options.onOpen called when the link opens (send the hello here)
   * @param {(bytes: Uint8Array) => void} options.onFrame called for every binary frame
   * @param {(code?: number) => void} options.onClose called when an open or opening link goes
   *   away, with the close code the server sent (undefined when we dropped it ourselves)
   */
  constructor({ url, fallbackUrl, onOpen, onFrame, onClose }) {
    this.url = url;
    this.fallbackUrl = fallbackUrl;
    this.onOpen = onOpen;
    this.onFrame = onFrame;
    this.onClose = onClose;
    this.link = null;
    this.attempt = 0;
    this.retryTimer = null;
    this.joinTimer = null;
    this.probeTimer = null;
    this.stopped = false;
    /** 'websocket' or 'sse': what the next connection uses. */
    this.transport = 'websocket';
    this.socketFailures = 0;
    /** How often a WebSocket is tried again while on the fallback. */
    this.wsRetryMs = WS_RETRY_MS;
    /** When the next connection attempt is due (`performance.now()` time), while one waits. */
    this.retryAt = null;
    window.addEventListener('online', () => {
      if (!this.stopped) this.reconnectNow();
    });
  }

  /** Gives up for good (the server refused our link): no more retries. */
  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.joinTimer);
    clearTimeout(this.probeTimer);
    this.retryTimer = null;
  }

  get isOpen() {
    return this.link !== null && this.link.isOpen;
  }

  start() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.retryAt = null;
    const link = this.transport === 'sse' ? new SseLink(this.fallbackUrl) : new SocketLink(this.url);
    this.link = link;
    link.onopen = () => {
      this.joinTimer = setTimeout(() => this.reconnectNow(), JOIN_TIMEOUT_MS);
      this.onOpen();
    };
    link.onframe = (bytes) => this.onFrame(bytes);
    link.onclose = (code, opened = true) => {
      clearTimeout(this.joinTimer);
      if (this.link !== link) return;
      this.link = null;
      this.onClose(code);
      if (link instanceof SocketLink) {
        this.socketFailures = opened ? 0 : this.socketFailures + 1;
        if (this.socketFailures >= WS_FAILURES_BEFORE_FALLBACK) {
          console.info('WebSockets do not get through: trying the fallback (Server-Sent Events and POSTs)');
          this.transport = 'sse';
          if (!this.stopped) return this.start();
        }
      } else if (!opened) {
        // The fallback did not get through either: the network (or the server) is down, not
        // only WebSockets. Try a WebSocket first again, so that the first link back is one.
        this.transport = 'websocket';
        this.socketFailures = 0;
      }
      this.scheduleRetry();
    };
    link.start();
  }

  /** The server welcomed us: the next outage starts the backoff from the beginning. */
  joined() {
    clearTimeout(this.joinTimer);
    this.attempt = 0;
    if (this.transport === 'sse') this.scheduleProbe();
  }

  /** On the fallback: try a WebSocket now and then; once one opens, switch back to it. */
  scheduleProbe() {
    clearTimeout(this.probeTimer);
    this.probeTimer = setTimeout(() => {
      if (this.stopped || this.transport !== 'sse') return;
      const probe = new SocketLink(this.url);
      probe.onopen = () => {
        probe.close();
        console.info('WebSockets get through again: switching back');
        this.transport = 'websocket';
        this.socketFailures = 0;
        this.reconnectNow();
      };
      probe.onclose = () => this.scheduleProbe();
      probe.start();
    }, this.wsRetryMs);
  }

  send(bytes) {
    if (!this.isOpen) return false;
    return this.link.send(bytes);
  }

  /** The browser says its network is gone: drop the link now rather than wait for TCP to
   * notice; retries go on with backoff (and at once when the browser is back online). */
  dropForOffline() {
    const link = this.link;
    if (!link) return;
    this.link = null;
    link.close();
    clearTimeout(this.joinTimer);
    this.onClose();
    this.scheduleRetry();
  }

  /** Drops the current link (if any) and connects again at once. */
  reconnectNow() {
    if (this.stopped) return;
    const link = this.link;
    if (link) {
      this.link = null;
      link.close();
      clearTimeout(this.joinTimer);
      this.onClose();
    }
    this.attempt = 0;
    this.start();
  }

  scheduleRetry() {
    if (this.retryTimer !== null || this.stopped) return;
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    this.retryAt = performance.now() + delay;
    this.retryTimer = setTimeout(() => this.start(), delay);
  }
}
