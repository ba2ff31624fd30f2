// The status pill: what a person needs to know about their edits, said calmly.
//
// `describeStatus` says what is true now; `StatusView` shows it without flicker: a change is
// shown at most every `minGapMs` (a person can read it), a short "Saving…" that resolves before
// `savingDelayMs` is never shown at all (typing with acknowledgements coming back is "Saved"),
// and screen readers hear each new state once (the count of kept edits changing is not news).

/**
 * @param {object} facts
 * @param {'down'|'joining'|'up'} facts.link the connection to the server
 * @param {number} facts.pending own edits the server has not acknowledged
 * @param {boolean} [facts.browserOnline] what the browser says of its network
 * @param {number|null} [facts.retryInMs] when the next connection attempt is due, if one is
 * @returns {{state: 'online'|'syncing'|'offline', text: string}}
 */
export function describeStatus({ link, pending, browserOnline = true, retryInMs = null }) {
  const kept = pending === 1 ? '1 edit kept on this device' : `${pending} edits kept on this device`;
  if (link === 'up') return pending > 0 ? { state: 'syncing', text: 'Saving…' } : { state: 'online', text: 'Saved' };
  if (!browserOnline) return { state: 'offline', text: pending > 0 ? `Offline — ${kept}` : 'Offline' };
  if (link === 'joining') return { state: 'syncing', text: pending > 0 ? `Connecting — ${kept}` : 'Connecting…' };
  const retry = retryInMs === null ? 'Reconnecting…' : `Reconnecting in ${Math.max(1, Math.ceil(retryInMs / 1000))} s`;
  return { state: 'offline', text: pending > 0 ? `${retry} — ${kept}` : retry };
}

/** Shows statuses on `element` (its text and `data-state`) and announces them on `live`. */
export class StatusView {
  constructor(element, live, { minGapMs = 500, savingDelayMs = 1000, now = () => performance.now() } = {}) {
    this.element = element;
    this.live = live;
    this.minGapMs = minGapMs;
    this.savingDelayMs = savingDelayMs;
    this.now = now;
    this.shown = null;
    this.shownAt = -Infinity;
    this.wanted = null;
    this.savingSince = null;
    this.timer = null;
  }

  /** The status is now `status` (from `describeStatus`); shows it when it may. */
  set(status) {
    const now = this.now();
    // "Saving…" right after "Saved" waits: most saves finish before anyone could read it.
    if (status.state === 'syncing' && this.shown?.state === 'online') {
      this.savingSince ??= now;
    } else {
      this.savingSince = null;
    }
    this.wanted = status;
    this.schedule();
  }

  schedule() {
    clearTimeout(this.timer);
    this.timer = null;
    const status = this.wanted;
    if (!status || (this.shown && status.state === this.shown.state && status.text === this.shown.text)) return;
    const now = this.now();
    let at = this.shownAt + this.minGapMs;
    if (this.savingSince !== null) at = Math.max(at, this.savingSince + this.savingDelayMs);
    if (at <= now) {
      this.show(status, now);
    } else {
      this.timer = setTimeout(() => this.schedule(), at - now);
    }
  }

  show(status, now) {
    const changedState = this.shown?.state !== status.state;
    this.shown = status;
    this.shownAt = now;
    this.element.dataset.state = status.state;
    this.element.textContent = status.text;
    // Announced once per state, in words without the counts that change with every key.
    if (changedState && this.live) this.live.textContent = status.text.replace(/ — .*$/, '');
  }
}
