// The WebSocket to the document server: reconnects forever with capped, jittered exponential
// backoff (see backoff.js). It knows nothing of the protocol; the page says when a connection
// is "joined" (Welcome received), which resets the backoff.

import { backoffDelay } from './backoff.js';

/** A connection that opened but was not welcomed within this time is dropped and retried. */
const JOIN_TIMEOUT_MS = 10000;

export class Connection {
  /**
   * @param {object} options
   * @param {string} options.url
   * @param {() => void} options.onOpen called when the socket opens (send the hello here)
   * @param {(bytes: Uint8Array) => void} options.onFrame called for every binary frame
   * @param {(code?: number) => void} options.onClose called when an open or opening socket goes
   *   away, with the close code the server sent (undefined when we dropped it ourselves)
   */
  constructor({ url, onOpen, onFrame, onClose }) {
    this.url = url;
    this.onOpen = onOpen;
    this.onFrame = onFrame;
    this.onClose = onClose;
    this.socket = null;
    this.attempt = 0;
    this.retryTimer = null;
    this.joinTimer = null;
    this.stopped = false;
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
    this.retryTimer = null;
  }

  get isOpen() {
    return this.socket !== null && this.socket.readyState === WebSocket.OPEN;
  }

  start() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.retryAt = null;
    let socket;
    try {
      socket = new WebSocket(this.url);
    } catch (error) {
      console.warn('websocket', error);
      this.scheduleRetry();
      return;
    }
    socket.binaryType = 'arraybuffer';
    this.socket = socket;
    socket.onopen = () => {
      this.joinTimer = setTimeout(() => socket.close(), JOIN_TIMEOUT_MS);
      this.onOpen();
    };
    socket.onmessage = (message) => {
      if (message.data instanceof ArrayBuffer) this.onFrame(new Uint8Array(message.data));
    };
    socket.onclose = (event) => {
      clearTimeout(this.joinTimer);
      if (this.socket !== socket) return;
      this.socket = null;
      this.onClose(event.code);
      this.scheduleRetry();
    };
  }

  /** The server welcomed us: the next outage starts the backoff from the beginning. */
  joined() {
    clearTimeout(this.joinTimer);
    this.attempt = 0;
  }

  send(bytes) {
    if (!this.isOpen) return false;
    this.socket.send(bytes);
    return true;
  }

  /** The browser says its network is gone: drop the socket now rather than wait for TCP to
   * notice; retries go on with backoff (and at once when the browser is back online). */
  dropForOffline() {
    const socket = this.socket;
    if (!socket) return;
    this.socket = null;
    socket.onclose = null;
    socket.close();
    clearTimeout(this.joinTimer);
    this.onClose();
    this.scheduleRetry();
  }

  /** Drops the current socket (if any) and connects again at once. */
  reconnectNow() {
    if (this.stopped) return;
    const socket = this.socket;
    if (socket) {
      this.socket = null;
      socket.onclose = null;
      socket.close();
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
