// The document list (/): the documents this browser has links to (and, on a server in --open
// mode or for an operator, every stored one), newest first, and a button for a new one.

import { knownDocs, rememberCreated } from './lib/links.js';
import { registerShell } from './lib/shell.js';

window.addEventListener('load', registerShell);

const list = document.querySelector('#docs');

document.querySelector('#new-doc').addEventListener('click', async () => {
  const button = document.querySelector('#new-doc');
  button.disabled = true;
  try {
    const response = await fetch('/docs', { method: 'POST' });
    if (!response.ok) throw new Error(`the server answered ${response.status}`);
    const links = await response.json();
    rememberCreated(links);
    location.href = links.edit;
  } catch (error) {
    button.disabled = false;
    showEmpty(`Could not create a document (${error.message}).`);
  }
});

function showEmpty(text) {
  const item = document.createElement('li');
  item.className = 'empty';
  item.textContent = text;
  list.replaceChildren(item);
}

/** The server's list when it gives one (open mode, or an operator), else null. */
async function serverDocs() {
  try {
    const response = await fetch('/docs');
    return response.ok ? await response.json() : null;
  } catch {
    return null;
  }
}

/** Title, last edit and people now of each document this browser has a link to. */
async function summaries(tokens) {
  if (tokens.length === 0) return [];
  try {
    const response = await fetch('/docs/summaries', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ tokens: tokens.slice(0, 500) }),
    });
    return response.ok ? await response.json() : [];
  } catch {
    return [];
  }
}

function ago(ms) {
  const seconds = Math.round((Date.now() - ms) / 1000);
  if (seconds < 60) return 'just now';
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return new Date(ms).toLocaleDateString();
}

/** Renames a document from the list: the server makes the change as its own replica, and
 * whoever has the document open sees the new title at once. */
function renameButton(doc, titleElement) {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'rename';
  button.textContent = 'Rename';
  button.setAttribute('aria-label', `Rename ${doc.title || 'Untitled'}`);
  button.addEventListener('click', async () => {
    const title = prompt('New title', doc.title ?? '');
    if (title === null || title.trim() === (doc.title ?? '')) return;
    const headers = { 'Content-Type': 'application/json' };
    if (doc.token) headers.Authorization = `Bearer ${doc.token}`;
    const response = await fetch(`/docs/${encodeURIComponent(doc.id)}/title`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ title }),
    });
    if (!response.ok) {
      alert(`Could not rename it: ${(await response.text()) || response.status}`);
      return;
    }
    doc.title = title.trim();
    titleElement.textContent = doc.title || 'Untitled';
    button.setAttribute('aria-label', `Rename ${doc.title || 'Untitled'}`);
  });
  return button;
}

async function load() {
  const known = knownDocs();
  const rows = new Map();
  for (const [id, doc] of Object.entries(known)) {
    rows.set(id, { id, when: doc.openedMs ?? 0, role: doc.role, token: doc.token });
  }
  const [fromServer, fromLinks] = await Promise.all([
    serverDocs(),
    summaries(Object.values(known).map((doc) => doc.token).filter(Boolean)),
  ]);
  for (const doc of [...(fromServer ?? []), ...fromLinks]) {
    const row = rows.get(doc.id) ?? { id: doc.id };
    rows.set(doc.id, {
      ...row,
      title: doc.title ?? row.title,
      edited: doc.exists === false ? row.edited : doc.updated_ms,
      here: doc.here,
      when: Math.max(row.when ?? 0, doc.updated_ms ?? 0),
    });
  }
  const docs = [...rows.values()].sort((a, b) => b.when - a.when);
  if (docs.length === 0) {
    showEmpty('No documents yet. Create one, or open a link someone shared with you.');
    return;
  }
  list.replaceChildren();
  for (const doc of docs) {
    const item = document.createElement('li');
    const link = document.createElement('a');
    link.href = `/d/${encodeURIComponent(doc.id)}${doc.token ? `#${doc.token}` : ''}`;
    const title = document.createElement('span');
    title.className = 'doc-title';
    title.textContent = doc.title || 'Untitled';
    const id = document.createElement('span');
    id.className = 'doc-list-id';
    id.textContent = doc.id;
    link.append(title, ' ', id);
    item.append(link);
    const details = [];
    if (doc.role === 'read') details.push('view only');
    details.push(doc.edited ? `edited ${ago(doc.edited)}` : 'not edited yet');
    if (doc.here) details.push(doc.here === 1 ? '1 person here now' : `${doc.here} people here now`);
    const meta = document.createElement('span');
    meta.className = 'doc-meta';
    meta.textContent = details.join(' · ');
    if (doc.edited) meta.title = new Date(doc.edited).toLocaleString();
    item.append(' ', meta);
    if (doc.role !== 'read') item.append(' ', renameButton(doc, title));
    list.append(item);
  }
}

load();
