// The fallback transport (PROTOCOL.md section 1a): the same binary frames as the WebSocket,
// server → client as Server-Sent Events (base64 in `data:` lines, read with fetch so that a
// refusal's status and the end of the stream are seen), client → server as POSTs of
// length-prefixed frames, one POST at a time so that frames arrive in order.
//
// It has the surface Connection needs of a socket: `onopen`, `onframe(bytes)`,
// `onclose(code, opened)`, `send(bytes)`, `close()` (silent: no `onclose`), `isOpen`.

/** Frames of one POST, in bytes at most (a single larger frame still goes alone). */
const MAX_POST_BYTES = 1 << 20;

export class SseLink {
  /** `url`: the document's `/ws/{id}/sse` address. */
  constructor(url) {
    this.url = url;
    this.onopen = () => {};
    this.onframe = () => {};
    this.onclose = () => {};
    this.session = null;
    this.queue = [];
    this.posting = false;
    this.done = false;
    this.abort = new AbortController();
  }

  get isOpen() {
    return this.session !== null && !this.done;
  }

  start() {
    this.read().catch(() => this.finish(undefined));
  }

  async read() {
    const response = await fetch(this.url, {
      headers: { Accept: 'text/event-stream' },
      cache: 'no-store',
      signal: this.abort.signal,
    });
    if (!response.ok || !response.body) return this.finish(undefined);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done || this.done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        this.event(block);
        if (this.done) return;
      }
    }
    this.finish(undefined);
  }

  /** One event: `event:` and `data:` lines. */
  event(block) {
    let name = 'message';
    let data = '';
    for (const line of block.split('\n')) {
      if (line.startsWith('event:')) name = line.slice(6).trim();
      else if (line.startsWith('data:')) data += line.slice(5).trimStart();
    }
    if (name === 'session') {
      this.session = data;
      this.postUrl = `${this.url}/${encodeURIComponent(data)}`;
      this.onopen();
    } else if (name === 'message') {
      this.onframe(Uint8Array.from(atob(data), (c) => c.charCodeAt(0)));
    } else if (name === 'ping') {
      // The pong: an empty POST (it may overtake frames; order does not matter for it).
      this.post(new Uint8Array(0)).catch(() => this.finish(undefined));
    } else if (name === 'close') {
      const code = Number.parseInt(data, 10);
      this.finish(Number.isFinite(code) ? code : undefined);
    }
  }

  send(bytes) {
    if (!this.isOpen) return false;
    this.queue.push(bytes);
    this.pump();
    return true;
  }

  /** Sends the queued frames, one POST at a time, as many in one POST as fit. */
  async pump() {
    if (this.posting || this.queue.length === 0 || this.done) return;
    this.posting = true;
    try {
      while (this.queue.length > 0 && !this.done) {
        let count = 0;
        let size = 0;
        while (count < this.queue.length && (count === 0 || size + 4 + this.queue[count].length <= MAX_POST_BYTES)) {
          size += 4 + this.queue[count].length;
          count += 1;
        }
        const frames = this.queue.splice(0, count);
        const body = new Uint8Array(size);
        const view = new DataView(body.buffer);
        let at = 0;
        for (const frame of frames) {
          view.setUint32(at, frame.length);
          body.set(frame, at + 4);
          at += 4 + frame.length;
        }
        const status = await this.post(body);
        // 413: a frame above the server's limit; the session closes with 1009 (the same
        // close a WebSocket gets), which tells the client to send smaller frames.
        if (status === 413) return this.finish(1009);
        if (status !== 204) return this.finish(undefined);
      }
    } catch {
      this.finish(undefined);
    } finally {
      this.posting = false;
    }
  }

  async post(body) {
    const response = await fetch(this.postUrl, {
      method: 'POST',
      body,
      headers: { 'Content-Type': 'application/octet-stream' },
      signal: this.abort.signal,
    });
    return response.status;
  }

  finish(code) {
    if (this.done) return;
    this.done = true;
    this.abort.abort();
    this.onclose(code, this.session !== null);
  }

  /** Ends the link without telling `onclose` (the caller is closing it). */
  close() {
    this.onclose = () => {};
    this.finish(undefined);
  }
}
