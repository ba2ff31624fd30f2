// The editor page (/d/{id}): CodeMirror over a wasm `Client`, synced through the server's
// WebSocket, saved to IndexedDB as it changes (lib/saver.js), and shared with other tabs of
// this browser through a BroadcastChannel.
//
// Data flow (see crates/wasm-client for the client's side):
//   typing        -> client.edit() -> saver.schedule()            (all a keystroke does)
//   microtask     -> client.takeUnsaved() -> IndexedDB records -> on commit: markSaved,
//                    nextFrame() -> socket, records -> other tabs
//   socket frame  -> client.receive() -> event.deltas -> CodeMirror (annotated as remote)
//   other tab     -> client.receiveFromTab(record) -> same as a socket frame

import { Annotation, ChangeSet, Compartment, EditorState, Transaction } from '@codemirror/state';
import { EditorView, keymap, drawSelection, highlightActiveLine, placeholder } from '@codemirror/view';
import { history, historyKeymap } from '@codemirror/commands';
import { highlightSelectionMatches, search, searchKeymap } from '@codemirror/search';

import init, { Client, inflateState } from '../pkg/wasm_client.js';
// The wasm module's URL under its content-hashed name (esbuild's file loader, see build.mjs).
import wasmUrl from '../pkg/wasm_client_bg.wasm';
import { Connection } from './lib/connection.js';
import { remoteCursors, setRemoteCursors } from './lib/cursors.js';
import { StatusView, describeStatus } from './lib/status.js';
import { Saver } from './lib/saver.js';
import { openStore } from './lib/store.js';
import { loadUser, saveUser } from './lib/user.js';
import { absolute, knownDocs, roleOf, tokenFor } from './lib/links.js';
import { setUpHistory } from './lib/history.js';
import { registerShell } from './lib/shell.js';
import { plainTextKeymap } from './lib/keymap.js';
import { restoreClient } from './lib/restore.js';

/** Marks editor transactions that come from the document, so they are not sent back. */
const fromDocument = Annotation.define();
/** Above this many deltas in one event, the editor is updated by one diff instead. */
const MAX_COMPOSED_DELTAS = 64;

const $ = (selector) => document.querySelector(selector);
const docId = decodeURIComponent(location.pathname.replace(/^\/d\//, '').replace(/\/$/, ''));
const likedKey = `crdt-editor:liked:${docId}`;
/** The link's access token ('' without one: fine for a server in --open mode). */
const token = tokenFor(docId);
/** A view link: the text is shown live but cannot be changed here. */
const readOnly = roleOf(token) === 'read';
/** Close codes of a refused link (PROTOCOL.md section 9). */
const CLOSE_UNAUTHORIZED = 4003;
const CLOSE_TOKEN_EXPIRED = 4004;

async function main() {
  await init({ module_or_path: wasmUrl });
  // After the wasm is in the HTTP cache, so that precaching it costs no second download.
  registerShell();
  document.title = `${docId} · editor`;
  $('#doc-id').textContent = docId;

  let user = loadUser();
  // Listen to the other tabs before reading storage: a record another tab stores after our
  // read reaches us here (one stored before it is in what we read; twice is harmless).
  const tabs = new BroadcastChannel(`crdt-editor:${docId}`);
  const early = [];
  tabs.onmessage = ({ data }) => early.push(data);
  const store = await openStore(inflateState);
  const replica = await store.claimReplica(docId);
  const author = await store.authorSecret(docId);
  const { client, stateBytes } = await store.open(docId, replica, (saved) => restoreClient(Client, replica, saved));
  // Proves to the server that this browser owns the replica ids its pages edited as.
  client.setAuthor(author);

  // ---- Saving and sending. ----

  // The status element also tells whether everything is saved in this browser
  // (data-local="saved"), so that a person or a test knows a reload will keep it.
  let shownBusy = null;
  const saver = new Saver({
    store,
    docId,
    replica,
    client,
    stateBytes,
    onStored: (records) => {
      for (const bytes of records) tabs.postMessage({ type: 'changes', bytes });
      flush();
    },
    onBusy: (busy) => {
      if (busy === shownBusy) return;
      shownBusy = busy;
      $('#status').dataset.local = busy ? 'saving' : 'saved';
    },
    onError: (error) => console.error('save', error),
  });
  const persist = () => saver.schedule();
  // Compact when the page is hidden or closed (the records are already stored either way).
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'hidden') saver.compactSoon();
  });
  window.addEventListener('pagehide', () => saver.compactSoon());

  let flushQueued = false;
  const flush = () => {
    if (flushQueued) return;
    flushQueued = true;
    // Edits made in one turn of the event loop go out as one batch.
    queueMicrotask(() => {
      flushQueued = false;
      let frame;
      while (connection.isOpen && (frame = client.nextFrame()) !== undefined) connection.send(frame);
      // An edit too large for any frame was dropped: say so, and rebuild from the server's copy.
      const notice = client.takeNotice();
      if (notice !== undefined) {
        showNotice(notice);
        connection.reconnectNow();
      }
      renderStatus();
    });
  };

  /** After every local change: save (then send, and tell the other tabs). */
  const madeLocally = () => {
    persist();
    renderStatus();
  };

  /** One keystroke's edit of the text (UTF-16 `from..to` replaced by `text`). */
  const localEdit = (from, to, text) => {
    client.edit(from, to, text);
    saver.schedule();
  };

  // ---- The editor. ----

  /** Whether the text can be changed here: not with a view link, nor once a link is refused. */
  const access = new Compartment();
  const editable = (yes) => [EditorState.readOnly.of(!yes), EditorView.editable.of(yes)];
  /** The close code that refused our link, once one did. */
  let refused = null;

  const view = new EditorView({
    parent: $('#editor'),
    state: EditorState.create({
      doc: client.text(),
      extensions: [
        history(),
        drawSelection(),
        highlightActiveLine(),
        EditorView.lineWrapping,
        // Only "\n" breaks lines, so that a "\r" typed elsewhere stays one character here and
        // editor offsets are always the document's UTF-16 offsets.
        EditorState.lineSeparator.of('\n'),
        placeholder('Start typing…'),
        // Ctrl+F / Cmd+F: the editor's own search and replace, which sees the whole text (the
        // browser's find sees only the lines on screen). Ctrl+S says where the edits are
        // instead of opening the browser's save dialog.
        search({ top: true }),
        highlightSelectionMatches(),
        keymap.of([{ key: 'Mod-s', run: () => (showSaved(), true), preventDefault: true }]),
        keymap.of([...searchKeymap, ...plainTextKeymap, ...historyKeymap]),
        remoteCursors,
        access.of(editable(!readOnly)),
        EditorView.contentAttributes.of({
          'aria-label': readOnly ? 'Document text (view only)' : 'Document text',
          spellcheck: 'true',
        }),
        EditorState.transactionFilter.of(refuseOversizedEdits),
        EditorView.updateListener.of((update) => {
          if (update.docChanged && !update.transactions.some((tr) => tr.annotation(fromDocument))) {
            sendLocalChanges(update.changes);
          }
          if (update.selectionSet || update.docChanged) sendPresence();
        }),
      ],
    }),
  });

  /**
   * Refuses, before the editor applies it, an edit that would take the document beyond the
   * size the server allows (`client.maxTextChars` characters, deleted ones included), and
   * says why in words. Nothing is changed then; everything else keeps syncing.
   */
  function refuseOversizedEdits(tr) {
    if (!tr.docChanged || tr.annotation(fromDocument)) return tr;
    let units = 0;
    tr.changes.iterChanges((_fromA, _toA, _fromB, _toB, inserted) => (units += inserted.length));
    const room = client.textRoom();
    // UTF-16 units are at least as many as characters: count characters only when it matters.
    if (units <= room) return tr;
    let chars = 0;
    tr.changes.iterChanges((_fromA, _toA, _fromB, _toB, inserted) => {
      const text = inserted.toString();
      chars += text.length - (text.match(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g)?.length ?? 0);
    });
    if (chars <= room) return tr;
    const max = client.maxTextChars.toLocaleString('en');
    queueMicrotask(() =>
      showNotice(
        `That edit was not made: it adds ${chars.toLocaleString('en')} characters, and this document has room ` +
          `for ${room.toLocaleString('en')} more (a document holds at most ${max} characters, deleted text ` +
          'included). Nothing was changed.',
      ),
    );
    return [];
  }

  function sendLocalChanges(changes) {
    // CodeMirror reports the changes against the old text, left to right; the client applies
    // them one by one, so each later change is shifted by what the earlier ones did.
    let shift = 0;
    changes.iterChanges((fromA, toA, _fromB, _toB, inserted) => {
      const text = inserted.toString();
      localEdit(fromA + shift, toA + shift, text);
      shift += text.length - (toA - fromA);
    });
    // Remote carets follow their characters: recompute them from their anchors, after this
    // update (CodeMirror does not want a dispatch from inside an update listener).
    queueMicrotask(renderCursors);
    renderStatus();
  }

  /** Brings the editor to the client's text, as a minimal edit so that the caret stays. */
  function resetEditor() {
    const current = view.state.doc.toString();
    const next = client.text();
    if (current === next) return;
    let start = 0;
    while (start < current.length && start < next.length && current[start] === next[start]) start++;
    let endA = current.length;
    let endB = next.length;
    while (endA > start && endB > start && current[endA - 1] === next[endB - 1]) {
      endA--;
      endB--;
    }
    view.dispatch({
      changes: { from: start, to: endA, insert: next.slice(start, endB) },
      annotations: [fromDocument.of(true), Transaction.addToHistory.of(false)],
    });
  }

  function applyEvent(event) {
    if (event.deltas.length > MAX_COMPOSED_DELTAS) {
      // A long catch-up: one minimal replace is cheaper than composing thousands of edits.
      resetEditor();
    } else if (event.deltas.length > 0) {
      // Each delta's position is in the text left by the previous one: compose them into one
      // editor transaction. It stays out of the undo history: Ctrl+Z undoes only your edits.
      let changes = ChangeSet.empty(view.state.doc.length);
      for (const delta of event.deltas) {
        const spec =
          delta.type === 'insert'
            ? { from: delta.pos, insert: delta.text }
            : { from: delta.pos, to: delta.pos + delta.len };
        changes = changes.compose(ChangeSet.of(spec, changes.newLength, '\n'));
      }
      view.dispatch({ changes, annotations: [fromDocument.of(true), Transaction.addToHistory.of(false)] });
    }
    if (event.reset || view.state.doc.length !== client.textLength()) {
      if (!event.reset) console.warn('editor and document disagree; resetting the editor');
      resetEditor();
    }
    if (event.changed) renderFields();
    if (event.deltas.length > 0 || event.reset || event.peersChanged) {
      renderCursors();
      renderPeople();
    }
    if (event.changed || event.acked > 0 || event.kind === 'welcome') persist();
    if (event.diverged) recoverFromDivergence();
    // Changes the server refused for good were discarded: rebuild from its copy now.
    if (event.reconnect) connection.reconnectNow();
    if (event.message) showNotice(event.message);
    renderStatus();
  }

  // ---- Presence. ----

  let presenceTimer = null;
  function sendPresence() {
    if (presenceTimer !== null) return;
    presenceTimer = setTimeout(() => {
      presenceTimer = null;
      if (client.linkState() !== 'up') return;
      const { anchor, head } = view.state.selection.main;
      connection.send(client.presenceFrame(anchor, head));
    }, 30);
  }

  /** When each remote caret last moved (by connection), to show its name for a while. */
  const caretMoved = new Map();
  const NAME_SHOWN_MS = 3000;
  let cursorsTimer = null;
  function renderCursors() {
    const now = performance.now();
    const peers = client.peers().map((peer) => {
      const last = caretMoved.get(peer.connection);
      if (!last || last.head !== peer.head || last.anchor !== peer.anchor) {
        caretMoved.set(peer.connection, { head: peer.head, anchor: peer.anchor, at: now });
      }
      return { ...peer, recent: now - caretMoved.get(peer.connection).at < NAME_SHOWN_MS };
    });
    view.dispatch({ effects: setRemoteCursors.of(peers) });
    // Hide the names again once they have been still for a while.
    clearTimeout(cursorsTimer);
    if (peers.some((peer) => peer.recent)) cursorsTimer = setTimeout(renderCursors, NAME_SHOWN_MS);
  }

  /** Who is here (by connection), to say who joined and left. */
  let present = null;
  function announcePeople() {
    const now = new Map(client.peers().map((peer) => [peer.connection, peer.name]));
    if (present !== null) {
      const joined = [...now].filter(([id]) => !present.has(id)).map(([, name]) => `${name} joined`);
      const left = [...present].filter(([id]) => !now.has(id)).map(([, name]) => `${name} left`);
      const news = [...joined, ...left];
      if (news.length > 0) $('#people-live').textContent = news.join(', ');
    }
    present = now;
  }

  function renderPeople() {
    announcePeople();
    const list = $('#people');
    list.replaceChildren();
    // One entry per person: their tabs (one connection each) share a name and colour.
    const tabs = new Map();
    for (const peer of client.peers()) {
      const key = `${peer.name}\u0000${peer.color}`;
      tabs.set(key, { name: peer.name, color: peer.color, count: (tabs.get(key)?.count ?? 0) + 1 });
    }
    const myKey = `${user.name}\u0000${user.color}`;
    const mine = tabs.get(myKey)?.count ?? 0;
    tabs.delete(myKey);
    const me = person(mine > 0 ? `${user.name} (you, ${mine + 1} tabs)` : `${user.name} (you)`, user.color);
    me.classList.add('me');
    list.append(me);
    for (const { name, color, count } of tabs.values()) list.append(person(count > 1 ? `${name} (${count} tabs)` : name, color));
  }

  function person(name, color) {
    const item = document.createElement('li');
    item.className = 'person';
    const dot = document.createElement('span');
    dot.className = 'dot';
    dot.style.backgroundColor = color;
    item.append(dot, document.createTextNode(name));
    return item;
  }

  // ---- Title, tags, likes, views. ----

  const titleInput = $('#title');
  titleInput.addEventListener('input', () => {
    client.setTitle(titleInput.value);
    madeLocally();
  });
  titleInput.addEventListener('blur', () => renderFields());

  $('#tag-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const input = $('#tag-input');
    const tag = input.value.trim();
    if (tag === '') return;
    input.value = '';
    client.addTag(tag);
    madeLocally();
    renderFields();
  });

  $('#like').addEventListener('click', () => {
    const liked = localStorage.getItem(likedKey) === '1';
    localStorage.setItem(likedKey, liked ? '0' : '1');
    client.like(!liked);
    madeLocally();
    renderFields();
  });

  function renderFields() {
    const title = client.title() ?? '';
    if (document.activeElement !== titleInput && titleInput.value !== title) titleInput.value = title;
    document.title = `${title || docId} · editor`;

    const tags = $('#tags');
    tags.replaceChildren();
    for (const tag of client.tags()) {
      const chip = document.createElement('li');
      chip.className = 'tag';
      chip.dataset.tag = tag;
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.className = 'remove-tag';
      remove.textContent = '×';
      remove.setAttribute('aria-label', `Remove tag ${tag}`);
      remove.addEventListener('click', () => {
        const next = chip.nextElementSibling?.dataset.tag ?? chip.previousElementSibling?.dataset.tag;
        client.removeTag(tag);
        madeLocally();
        renderFields();
        // Keep the keyboard where it was: on the next tag's button, else the new-tag box.
        const target = next && [...$('#tags').children].find((li) => li.dataset.tag === next);
        (target?.querySelector('button') ?? $('#tag-input')).focus();
      });
      chip.append(document.createTextNode(tag));
      if (!readOnly) chip.append(remove);
      tags.append(chip);
    }

    const liked = localStorage.getItem(likedKey) === '1';
    $('#like').textContent = liked ? '♥ Unlike' : '♡ Like';
    $('#like').setAttribute('aria-pressed', String(liked));
    const likes = client.likes();
    const views = client.views();
    $('#likes').textContent = String(likes);
    $('#likes-label').textContent = likes === 1 ? 'like' : 'likes';
    $('#views').textContent = String(views);
    $('#views-label').textContent = views === 1 ? 'view' : 'views';
  }

  // ---- Status. ----

  const statusView = new StatusView($('#status'), $('#status-live'));
  let statusTicker = null;
  /** When the connection (made further down) next tries to connect. */
  let retryAt = () => null;
  /** Which transport the connection uses ('websocket' or 'sse'), once it exists. */
  let transportNow = () => 'websocket';
  function renderStatus() {
    const link = client.linkState();
    const nextTry = retryAt();
    // The facts, undebounced, for tests and the curious (the pill shows them calmly).
    const pill = $('#status');
    pill.dataset.link = link;
    pill.dataset.pending = String(client.pendingCount());
    pill.dataset.transport = transportNow();
    statusView.set(
      refused
        ? { state: 'offline', text: refused === CLOSE_TOKEN_EXPIRED ? 'Link expired' : 'No access' }
        : describeStatus({
            link,
            pending: client.pendingCount(),
            browserOnline: navigator.onLine,
            retryInMs: nextTry === null ? null : nextTry - performance.now(),
          }),
    );
    // While disconnected, the countdown to the next attempt moves once a second.
    if (link === 'down' && !refused && statusTicker === null) {
      statusTicker = setInterval(renderStatus, 1000);
    } else if ((link !== 'down' || refused) && statusTicker !== null) {
      clearInterval(statusTicker);
      statusTicker = null;
    }
  }


  // A divergence (same version as the server, other state hash) is a bug somewhere. Recover
  // once per page by rebuilding from the server's copy plus our unsaved edits; if it happens
  // again, say so rather than loop.
  let resynced = false;
  function recoverFromDivergence() {
    if (resynced) {
      showNotice('This copy still differs from the server’s. Your edits are kept; please report this.');
      return;
    }
    resynced = true;
    console.warn('state hash differs from the server at the same version: resyncing');
    client.startResync();
    connection.reconnectNow();
  }

  /** Prose font by default; monospace when the person asks (remembered in this browser). */
  function setUpFont() {
    const key = 'crdt-editor:mono';
    const button = $('#mono');
    const apply = (mono) => {
      $('#editor').classList.toggle('mono', mono);
      button.setAttribute('aria-pressed', String(mono));
    };
    apply(localStorage.getItem(key) === '1');
    button.addEventListener('click', () => {
      const mono = button.getAttribute('aria-pressed') !== 'true';
      localStorage.setItem(key, mono ? '1' : '0');
      apply(mono);
    });
  }

  // ---- Access: view-only pages and the share panel. ----

  function setUpAccess() {
    if (readOnly) {
      $('#access').hidden = false;
      titleInput.readOnly = true;
      $('#tag-form').hidden = true;
      $('#like').disabled = true;
    }
    const button = $('#share');
    button.addEventListener('click', async () => {
      const panel = $('#share-panel');
      panel.hidden = !panel.hidden;
      button.setAttribute('aria-expanded', String(!panel.hidden));
      if (!panel.hidden) await renderShareLinks();
    });
  }

  /** The links this page can give: the view link always, the edit link unless it is one. */
  async function shareLinks() {
    if (!token) return { edit: absolute(`/d/${encodeURIComponent(docId)}`) };
    if (readOnly) return { view: absolute(`/d/${encodeURIComponent(docId)}#${token}`) };
    const known = knownDocs()[docId];
    if (known?.edit && known?.view) return { edit: absolute(known.edit), view: absolute(known.view) };
    const response = await fetch(`/docs/${encodeURIComponent(docId)}/links`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}` },
    });
    if (!response.ok) throw new Error(`the server answered ${response.status}`);
    const links = await response.json();
    return { edit: links.edit && absolute(links.edit), view: absolute(links.view) };
  }

  async function renderShareLinks() {
    const box = $('#share-links');
    box.replaceChildren('Making links…');
    let links;
    try {
      links = await shareLinks();
    } catch (error) {
      box.replaceChildren(`Could not make links (${error.message}).`);
      return;
    }
    box.replaceChildren();
    for (const [kind, label] of [['edit', 'Edit link'], ['view', 'View link']]) {
      if (!links[kind]) continue;
      const row = document.createElement('div');
      row.className = 'share-row';
      const name = document.createElement('label');
      name.textContent = label;
      const field = document.createElement('input');
      field.type = 'text';
      field.readOnly = true;
      field.value = links[kind];
      field.id = `share-${kind}`;
      name.htmlFor = field.id;
      const copy = document.createElement('button');
      copy.type = 'button';
      copy.textContent = 'Copy';
      copy.addEventListener('click', async () => {
        field.select();
        try {
          await navigator.clipboard.writeText(field.value);
          copy.textContent = 'Copied';
        } catch {
          copy.textContent = 'Select and copy';
        }
      });
      row.append(name, field, copy);
      box.append(row);
    }
  }

  /** Ctrl+S: everything is saved as it is typed; say where it is now. */
  function showSaved() {
    const pending = client.pendingCount();
    const local = $('#status').dataset.local === 'saving' ? 'being saved on this device' : 'saved on this device';
    const server =
      pending === 0 ? 'and on the server' : `; ${pending === 1 ? '1 edit' : `${pending} edits`} not on the server yet`;
    showNotice(`Your edits save as you type: ${local} ${server}.`, 3000);
  }

  // Closing the tab while an edit is not yet stored anywhere (a few milliseconds after a key)
  // asks first; once it is in this browser's storage, closing loses nothing.
  window.addEventListener('beforeunload', (event) => {
    if ($('#status').dataset.local === 'saving') {
      event.preventDefault();
      event.returnValue = '';
    }
  });

  let noticeTimer = null;
  /** Shows `message` above the document; for `forMs` only, if given. */
  function showNotice(message, forMs) {
    const notice = $('#notice');
    clearTimeout(noticeTimer);
    notice.textContent = message;
    notice.hidden = false;
    if (forMs) noticeTimer = setTimeout(() => (notice.hidden = true), forMs);
  }

  // ---- Your name. ----

  const nameInput = $('#name');
  nameInput.value = user.name;
  $('#name-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const name = nameInput.value.trim();
    if (name === '' || name === user.name) return;
    user = { ...user, name };
    saveUser(user);
    renderPeople();
    // The name travels in the hello: a new connection announces it.
    connection.reconnectNow();
  });

  // ---- Other tabs of this browser. ----

  // Tabs exchange only stored records (write-ahead: a change leaves a tab once stored), and
  // a new tab reads everything stored before it listens, so no state exchange is needed.
  const fromTab = (data) => {
    try {
      if (data.type === 'changes') applyEvent(client.receiveFromTab(data.bytes));
    } catch (error) {
      console.error('tab message', error);
    }
  };
  tabs.onmessage = ({ data }) => fromTab(data);
  for (const data of early.splice(0)) fromTab(data);

  // ---- The server. ----

  const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws/${encodeURIComponent(docId)}`;
  const connection = new Connection({
    url: wsUrl,
    fallbackUrl: `${location.origin}/ws/${encodeURIComponent(docId)}/sse`,
    onOpen: () => {
      connection.send(client.helloFrame(user.name, user.color, token));
      renderStatus();
    },
    onFrame: (bytes) => {
      let event;
      try {
        event = client.receive(bytes);
      } catch (error) {
        console.error('bad frame from the server', error);
        return;
      }
      if (event.kind === 'welcome') {
        connection.joined();
        sendPresence();
      }
      applyEvent(event);
      flush();
    },
    onClose: (code) => {
      if (code === CLOSE_UNAUTHORIZED || code === CLOSE_TOKEN_EXPIRED) {
        // Retrying with the same link cannot help: say so, and keep what is here readable.
        connection.stop();
        refused = code;
        showNotice(
          code === CLOSE_TOKEN_EXPIRED
            ? 'This link has expired. Ask the person who shared it for a new one.'
            : token
              ? 'This link does not open this document. Ask the person who shared it for a new one.'
              : 'This document needs a link to open: ask its owner to share one with you.',
        );
        view.dispatch({ effects: access.reconfigure(editable(false)) });
        renderStatus();
      }
      // 4002: the server refused our replica id (our previous socket may still look alive
      // there); the client now edits as a new id and the retry connects with it. The pending
      // changes of the old id still go out: the author secret owns them.
      if (client.disconnected(code)) console.info('replica id refused by the server; now editing as', client.replica);
      renderCursors();
      renderPeople();
      renderStatus();
    },
  });

  retryAt = () => connection.retryAt;
  transportNow = () => connection.transport;
  window.addEventListener('offline', () => {
    connection.dropForOffline();
    renderStatus();
  });
  window.addEventListener('online', renderStatus);

  // One view per page open; it is saved and sent like any other change (a view link sends
  // nothing: the server would refuse it).
  if (!readOnly) {
    client.addView();
    madeLocally();
  }
  setUpAccess();
  setUpHistory({ docId, token, readOnly, view, showNotice });
  setUpFont();
  renderFields();
  renderPeople();
  renderStatus();
  connection.start();
  view.focus();
  // Tests and curious people can look at the client from the console.
  // `localEdit` is the keystroke path the editor takes, for the performance test.
  window.crdtEditor = { client, view, saver, replica, localEdit, connection, storedBytes: () => store.storedBytes(docId) };
}

main().catch((error) => {
  console.error(error);
  const notice = document.querySelector('#notice');
  notice.textContent = `The editor failed to start: ${error.message ?? error}`;
  notice.hidden = false;
});
