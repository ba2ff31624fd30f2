// Links and their access tokens (PROTOCOL.md section 9a). A link is `/d/{id}#<token>`: the
// token rides in the URL fragment, which the browser never sends to any server, and the page
// presents it in its Hello. This browser remembers, per document, the best token it was given,
// so that the document list and a reload without the fragment still open it.

const DOCS_KEY = 'crdt-editor:docs';
const ROLES = { r: 'read', w: 'write', a: 'admin' };
const RANK = { read: 1, write: 2, admin: 3 };

/** The role a token grants (`read`, `write`, `admin`), or null if it is not a token. */
export function roleOf(token) {
  const match = /^v1\.([rwa])\.[^.]+\.(\d+)\.[A-Za-z0-9_-]+$/.exec(token ?? '');
  return match ? ROLES[match[1]] : null;
}

/** When a token stops working (ms since the epoch), or null if it is not a token. */
export function expiryOf(token) {
  const match = /^v1\.[rwa]\.[^.]+\.(\d+)\./.exec(token ?? '');
  return match ? Number(match[1]) * 1000 : null;
}

/** Every document this browser has a link to: id → { token, role, openedMs, edit?, view? }. */
export function knownDocs() {
  try {
    const docs = JSON.parse(localStorage.getItem(DOCS_KEY) ?? '{}');
    return docs && typeof docs === 'object' ? docs : {};
  } catch {
    return {};
  }
}

function saveDocs(docs) {
  try {
    localStorage.setItem(DOCS_KEY, JSON.stringify(docs));
  } catch (error) {
    console.warn('cannot remember the link', error);
  }
}

/** Remembers what `POST /docs` answered for a new document (its edit and view links). */
export function rememberCreated({ id, edit, view }) {
  const docs = knownDocs();
  const token = edit.split('#')[1];
  docs[id] = { ...docs[id], token, role: roleOf(token), openedMs: Date.now(), edit, view };
  saveDocs(docs);
}

/**
 * The token this page opens `docId` with: the one in the address's fragment, unless this
 * browser holds a usable one that grants more (its unsent edits must still go out, which a
 * view link could not do); else the remembered one; `''` when there is none. The best token is
 * remembered.
 */
export function tokenFor(docId, hash = location.hash) {
  const docs = knownDocs();
  const known = docs[docId];
  const given = decodeURIComponent(hash.replace(/^#/, ''));
  const givenRole = roleOf(given);
  const knownUsable = Boolean(known && roleOf(known.token) && expiryOf(known.token) > Date.now());
  const keepKnown = knownUsable && (!givenRole || RANK[roleOf(known.token)] > RANK[givenRole]);
  if (givenRole && !keepKnown) {
    docs[docId] = { ...known, token: given, role: givenRole, openedMs: Date.now() };
    saveDocs(docs);
    return given;
  }
  if (known) {
    docs[docId] = { ...known, openedMs: Date.now() };
    saveDocs(docs);
    return keepKnown || !givenRole ? known.token ?? '' : given;
  }
  return given && givenRole ? given : '';
}

/** The absolute address of a link path such as `/d/{id}#token`. */
export function absolute(link) {
  return new URL(link, location.origin).href;
}
