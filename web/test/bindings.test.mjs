// Binding tests: the built wasm package (web/pkg, from scripts/build-web.sh) under Node, no
// browser. Positions are UTF-16 code units, as in the editor.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { initSync, Client, inflateState } from '../pkg/wasm_client.js';

initSync({ module: readFileSync(new URL('../pkg/wasm_client_bg.wasm', import.meta.url)) });

/** Applies event deltas to a string the way the editor does (UTF-16 offsets). */
function applyDeltas(text, deltas) {
  for (const d of deltas) {
    text = d.type === 'insert' ? text.slice(0, d.pos) + d.text + text.slice(d.pos) : text.slice(0, d.pos) + text.slice(d.pos + d.len);
  }
  return text;
}

test('edits take UTF-16 positions around emoji and CJK', () => {
  const c = new Client();
  c.insert(0, '漢字');
  c.insert(2, '😀'); // after two one-unit CJK characters
  c.insert(4, '👍🏽'); // after the emoji's two units; skin tone modifier is two more code points
  c.insert(0, 'a');
  assert.equal(c.text(), 'a漢字😀👍🏽');
  c.replace(3, 5, 'b'); // the 😀 (units 3..5)
  assert.equal(c.text(), 'a漢字b👍🏽');
  c.delete(4, 4); // 👍🏽 is four units
  assert.equal(c.text(), 'a漢字b');
  assert.equal(c.textLength(), 'a漢字b'.length);
  c.insert(4, '🎉\r\n');
  assert.equal(c.textLength(), 'a漢字b🎉\r\n'.length); // UTF-16 units, as CodeMirror counts
  assert.equal(c.pendingCount(), 7); // five inserts, a replace (one change), a delete
});

test('a position inside a surrogate pair or past the end is an error, and nothing changes', () => {
  const c = new Client();
  c.insert(0, 'x😀y');
  assert.throws(() => c.insert(2, '!'), /surrogate|split/i);
  assert.throws(() => c.insert(99, '!'), /out of bounds|bounds/i);
  assert.throws(() => c.delete(3, 99), /out of bounds|bounds/i);
  assert.equal(c.text(), 'x😀y');
});

test('remote changes arrive as UTF-16 deltas that rebuild the same text', () => {
  const alice = new Client();
  const bob = new Client();
  let bobEditor = '';
  const deliver = (bytes, to, editor) => {
    const event = to.receiveFromTab(bytes);
    assert.equal(event.kind, 'changes');
    return applyDeltas(editor, event.deltas);
  };
  bobEditor = deliver(alice.insert(0, 'Hello 世界 🌍'), bob, bobEditor);
  assert.equal(bobEditor, 'Hello 世界 🌍');

  // Concurrent edits: neither has seen the other's.
  const fromAlice = alice.replace(6, 8, '地球'); // 世界 -> 地球
  const fromBob = bob.insert(11, '!'); // after the 🌍 (units 9..11)
  bobEditor += '!';
  let aliceEditor = alice.text();
  aliceEditor = deliver(fromBob, alice, aliceEditor);
  bobEditor = deliver(fromAlice, bob, bobEditor);
  assert.equal(alice.text(), 'Hello 地球 🌍!');
  assert.equal(bob.text(), alice.text());
  assert.equal(aliceEditor, alice.text());
  assert.equal(bobEditor, bob.text());
  assert.equal(alice.stateHash(), bob.stateHash());
});

test('delta shapes: insert {pos, text}, delete {pos, len}', () => {
  const a = new Client();
  const b = new Client();
  b.receiveFromTab(a.insert(0, 'ab😀cd'));
  const event = b.receiveFromTab(a.delete(2, 2));
  assert.deepEqual(event.deltas, [{ type: 'delete', pos: 2, len: 2 }]);
  const insert = b.receiveFromTab(a.insert(4, '漢'));
  assert.deepEqual(insert.deltas, [{ type: 'insert', pos: 4, text: '漢' }]);
  assert.equal(insert.changed, true);
  assert.equal(b.text(), 'abcd漢');
});

test('export and load keep text, fields and the unsent changes, under a new replica', () => {
  const c = new Client();
  c.insert(0, 'draft ✍️ 草稿');
  c.setTitle('Plans');
  c.addTag('todo');
  c.addTag('home');
  c.removeTag('todo');
  c.like(true);
  c.addView();
  const saved = c.export();
  assert.ok(saved instanceof Uint8Array);

  const restored = Client.load(saved);
  assert.notEqual(restored.replica, c.replica);
  assert.equal(restored.text(), 'draft ✍️ 草稿');
  assert.equal(restored.title(), 'Plans');
  assert.deepEqual(restored.tags(), ['home']);
  assert.equal(restored.likes(), 1);
  assert.equal(restored.views(), 1);
  assert.equal(restored.pendingCount(), c.pendingCount());
  assert.equal(restored.stateHash(), c.stateHash());
  assert.deepEqual(restored.value(), { body: 'draft ✍️ 草稿', likes: 1, tags: ['home'], title: 'Plans', views: 1 });

  // The restored copy keeps editing, and merges with another tab's saved state.
  restored.insert(0, '> ');
  const other = new Client();
  other.insert(0, 'other tab\n');
  const event = restored.mergeSaved(other.export());
  assert.equal(event.reset, true);
  assert.ok(restored.text().includes('other tab\n'));
  assert.ok(restored.text().includes('> draft ✍️ 草稿'));
});

test('a saved state deflated as store.js stores it inflates back through the wasm', async () => {
  const c = new Client();
  // Words in a varying order: deflate finds them, the state's long-repeat pass does not.
  const words = ['the', 'draft', 'of', 'a', 'plan', 'for', 'next', 'week', 'and', 'then'];
  let seed = 7;
  for (let i = 0; i < 600; i++) {
    seed = (seed * 48271) % 2147483647;
    c.insert(c.textLength(), `${words[seed % words.length]} `);
  }
  const saved = c.export();
  // What the page stores: CompressionStream('deflate-raw'), as Chromium has it.
  const stream = new Blob([saved]).stream().pipeThrough(new CompressionStream('deflate-raw'));
  const deflated = new Uint8Array(await new Response(stream).arrayBuffer());
  assert.ok(deflated.length < saved.length / 2, `${deflated.length} of ${saved.length} bytes`);
  const inflated = inflateState(deflated);
  assert.deepEqual(inflated, saved);
  assert.equal(Client.load(inflated).text(), c.text());
  assert.throws(() => inflateState(deflated.subarray(0, deflated.length - 5)));
  assert.throws(() => inflateState(new Uint8Array([0xff, 0xff, 0xff])));
});

test('load refuses bytes that are not a saved state', () => {
  assert.throws(() => Client.load(new Uint8Array([1, 2, 3])));
  assert.throws(() => Client.load(new Uint8Array()));
});

test('frames: hello first, nothing to send before the welcome', () => {
  const c = new Client();
  c.insert(0, 'queued');
  assert.equal(c.linkState(), 'down');
  assert.equal(c.nextFrame(), undefined);
  const hello = c.helloFrame('Ada', '#e91e63');
  assert.deepEqual([...hello.slice(0, 4)], [2, 16, 3, 5]); // format, client message, Hello (with token), protocol 5
  assert.equal(hello.at(-1), 0, 'no token: an empty string ends the hello');
  const withToken = c.helloFrame('Ada', '#e91e63', 'v1.w.doc.1.mac');
  assert.deepEqual([...withToken.slice(-15)], [14, ...new TextEncoder().encode('v1.w.doc.1.mac')]);
  assert.equal(c.linkState(), 'joining');
  assert.equal(c.nextFrame(), undefined);
  assert.equal(c.disconnected(), false);
  assert.equal(c.linkState(), 'down');
  assert.equal(c.pendingCount(), 1);
  assert.ok(c.presenceFrame(3, 6) instanceof Uint8Array);
});

test('author secret: 32 bytes, carried by the hello, kept across a refused replica id', () => {
  const c = new Client();
  assert.equal(c.author.length, 32);
  assert.throws(() => c.setAuthor(new Uint8Array(31)));
  const secret = new Uint8Array(32).map((_, i) => i + 1);
  c.setAuthor(secret);
  assert.deepEqual([...c.author], [...secret]);
  const hello = c.helloFrame('Ada', '#e91e63');
  // format, kind, Hello, protocol 3, replica (0x10 + 16 bytes), then the 32 secret bytes.
  assert.deepEqual([...hello.slice(21, 53)], [...secret]);
  const first = c.replica;
  c.insert(0, 'kept');
  assert.equal(c.disconnected(1006), false);
  assert.equal(c.replica, first);
  assert.equal(c.disconnected(4002), true, 'the server refused the replica id');
  assert.notEqual(c.replica, first);
  assert.equal(c.pendingCount(), 1, 'the old id\'s change is still pending');
  const again = c.helloFrame('Ada', '#e91e63');
  assert.deepEqual([...again.slice(21, 53)], [...secret]);
});
