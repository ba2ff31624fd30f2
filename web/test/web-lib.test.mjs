// Pure helpers of the page: reconnect backoff and the status line.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { backoffDelay, BACKOFF } from '../src/lib/backoff.js';
import { StatusView, describeStatus } from '../src/lib/status.js';
import { COLORS } from '../src/lib/user.js';

test('backoff grows exponentially, is capped, and is jittered within [d/2, d]', () => {
  const low = () => 0;
  const high = () => 0.999999;
  assert.equal(backoffDelay(0, low), BACKOFF.baseMs / 2);
  assert.equal(backoffDelay(1, low), BACKOFF.baseMs);
  assert.equal(backoffDelay(2, low), BACKOFF.baseMs * 2);
  for (const attempt of [10, 50, 1000]) {
    assert.ok(backoffDelay(attempt, high) <= BACKOFF.capMs);
    assert.equal(backoffDelay(attempt, low), BACKOFF.capMs / 2);
  }
  const samples = new Set(Array.from({ length: 20 }, () => backoffDelay(3)));
  assert.ok(samples.size > 1, 'jitter varies the delay');
});

test('status line', () => {
  assert.deepEqual(describeStatus({ link: 'up', pending: 0 }), { state: 'online', text: 'Saved' });
  assert.deepEqual(describeStatus({ link: 'up', pending: 1 }), { state: 'syncing', text: 'Saving…' });
  assert.deepEqual(describeStatus({ link: 'down', pending: 0, browserOnline: false }), { state: 'offline', text: 'Offline' });
  assert.deepEqual(describeStatus({ link: 'down', pending: 3, browserOnline: false }), {
    state: 'offline',
    text: 'Offline — 3 edits kept on this device',
  });
  assert.deepEqual(describeStatus({ link: 'down', pending: 1, retryInMs: 4200 }), {
    state: 'offline',
    text: 'Reconnecting in 5 s — 1 edit kept on this device',
  });
  assert.deepEqual(describeStatus({ link: 'down', pending: 0 }), { state: 'offline', text: 'Reconnecting…' });
  assert.deepEqual(describeStatus({ link: 'joining', pending: 0 }), { state: 'syncing', text: 'Connecting…' });
});

/** A clock and timers the test moves by hand. */
function fakeTime() {
  let now = 0;
  let timers = [];
  const realSet = globalThis.setTimeout;
  const realClear = globalThis.clearTimeout;
  globalThis.setTimeout = (fn, ms) => {
    const timer = { at: now + ms, fn };
    timers.push(timer);
    return timer;
  };
  globalThis.clearTimeout = (timer) => (timers = timers.filter((t) => t !== timer));
  return {
    now: () => now,
    advance(ms) {
      const until = now + ms;
      for (;;) {
        timers.sort((a, b) => a.at - b.at);
        const next = timers[0];
        if (!next || next.at > until) break;
        timers.shift();
        now = next.at;
        next.fn();
      }
      now = until;
    },
    restore() {
      globalThis.setTimeout = realSet;
      globalThis.clearTimeout = realClear;
    },
  };
}

test('the status pill changes at most twice a second, hides short saves, announces states once', () => {
  const time = fakeTime();
  try {
    // Every text the pill shows and every announcement, with the time they happened.
    const changes = [];
    const announced = [];
    const element = {
      dataset: {},
      set textContent(text) {
        if (changes.at(-1)?.[1] !== text) changes.push([time.now(), text]);
      },
    };
    const live = {
      set textContent(text) {
        announced.push(text);
      },
    };
    const view = new StatusView(element, live, { now: time.now });
    view.set(describeStatus({ link: 'up', pending: 0 }));
    // Ten keys a second for five seconds, each acknowledged 100 ms later.
    for (let key = 0; key < 50; key++) {
      view.set(describeStatus({ link: 'up', pending: 1 }));
      time.advance(100);
      view.set(describeStatus({ link: 'up', pending: 0 }));
      time.advance(0);
    }
    assert.deepEqual(changes.map(([, text]) => text), ['Saved'], 'short saves never show');

    // The network goes: offline at once (the last change was long ago), then the kept count
    // grows with every key without announcing anything new.
    time.advance(1000);
    for (let pending = 1; pending <= 20; pending++) {
      view.set(describeStatus({ link: 'down', pending, browserOnline: false }));
      time.advance(100);
    }
    const offline = changes.filter(([, text]) => text.startsWith('Offline'));
    assert.ok(offline.length >= 2 && offline.length <= 5, `${offline.length} offline texts in 2 s`);
    for (let i = 1; i < changes.length; i++) {
      assert.ok(changes[i][0] - changes[i - 1][0] >= 500, `changes ${changes[i - 1]} and ${changes[i]} too close`);
    }
    assert.deepEqual(announced, ['Saved', 'Offline']);
    assert.equal(element.dataset.state, 'offline');
  } finally {
    time.restore();
  }
});

test('every name label reads with at least AA contrast (4.5:1)', async () => {
  // cursors.js imports CodeMirror, which node resolves from web/node_modules.
  const { readableOn } = await import('../src/lib/cursors.js');
  const luminance = (hex) => {
    const [r, g, b] = [1, 3, 5]
      .map((at) => parseInt(hex.slice(at, at + 2), 16) / 255)
      .map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const contrast = (a, b) => {
    const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
  };
  for (const color of [...COLORS, '#ffff00', '#777777', '#000000', '#ffffff']) {
    const text = readableOn(color) === '#fff' ? '#ffffff' : '#000000';
    assert.ok(contrast(color, text) >= 4.5, `${text} on ${color}: ${contrast(color, text).toFixed(2)}`);
  }
});

test('Backspace and Delete of the plain-text keymap: clusters, line breaks, selections, read-only', async () => {
  const { EditorSelection, EditorState } = await import('@codemirror/state');
  const { deleteCharBackward, deleteCharForward, plainTextKeymap } = await import('../src/lib/keymap.js');
  /** A stand-in for EditorView: the commands only read `state` and call `dispatch`. */
  const run = (command, doc, selection, extensions = []) => {
    const view = { state: EditorState.create({ doc, selection, extensions }), events: [] };
    view.dispatch = (tr) => {
      view.events.push(['delete.backward', 'delete.forward', 'delete.selection'].find((e) => tr.isUserEvent(e)));
      view.state = tr.state;
    };
    const handled = command(view);
    return { handled, doc: view.state.doc.toString(), head: view.state.selection.main.head, event: view.events[0] };
  };
  const at = (pos) => EditorSelection.single(pos);
  // A surrogate pair, a ZWJ sequence and a base with a variation selector go as one character.
  assert.deepEqual(run(deleteCharBackward, 'a😀', at(3)), { handled: true, doc: 'a', head: 1, event: 'delete.backward' });
  assert.deepEqual(run(deleteCharBackward, 'x👩‍💻', at(6)), { handled: true, doc: 'x', head: 1, event: 'delete.backward' });
  assert.deepEqual(run(deleteCharBackward, 'x✓️', at(3)), { handled: true, doc: 'x', head: 1, event: 'delete.backward' });
  assert.deepEqual(run(deleteCharForward, '😀b', at(0)), { handled: true, doc: 'b', head: 0, event: 'delete.forward' });
  // Line edges join lines; document edges do nothing.
  assert.deepEqual(run(deleteCharBackward, 'ab\ncd', at(3)), { handled: true, doc: 'abcd', head: 2, event: 'delete.backward' });
  assert.deepEqual(run(deleteCharForward, 'ab\ncd', at(2)), { handled: true, doc: 'abcd', head: 2, event: 'delete.forward' });
  assert.equal(run(deleteCharBackward, 'ab', at(0)).handled, false);
  assert.equal(run(deleteCharForward, 'ab', at(2)).handled, false);
  // Leading spaces go one at a time (no language, so no indent unit).
  assert.deepEqual(run(deleteCharBackward, '    x', at(4)).doc, '   x');
  // A selection is deleted whole, whichever way.
  const selection = EditorSelection.single(4, 1);
  assert.deepEqual(run(deleteCharForward, 'abcdef', selection), { handled: true, doc: 'aef', head: 1, event: 'delete.selection' });
  // Read-only: not handled, so the browser's own handling is left alone too.
  assert.equal(run(deleteCharBackward, 'ab', at(1), [EditorState.readOnly.of(true)]).handled, false);
  // The keymap binds them, and no key twice for one platform.
  assert.equal(plainTextKeymap.find((b) => b.key === 'Backspace').run, deleteCharBackward);
  assert.equal(plainTextKeymap.find((b) => b.key === 'Delete').run, deleteCharForward);
  const keys = plainTextKeymap.filter((b) => b.key).map((b) => b.key);
  assert.equal(new Set(keys).size, keys.length);
});
