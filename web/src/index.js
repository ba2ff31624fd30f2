// The document list (/): the documents this browser has links to (and, on a server in --open
// mode or for an operator, every stored one), newest first, and a button for a new one.

import { knownDocs, rememberCreated } from './lib/links.js';

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

/** The server's list when it gives one (open mode), else null. */
async function serverDocs() {
  try {
    const response = await fetch('/docs');
    return response.ok ? await response.json() : null;
  } catch {
    return null;
  }
}

async function load() {
  const known = knownDocs();
  const rows = new Map();
  for (const [id, doc] of Object.entries(known)) rows.set(id, { id, when: doc.openedMs ?? 0, role: doc.role, token: doc.token });
  for (const doc of (await serverDocs()) ?? []) {
    const row = rows.get(doc.id) ?? { id: doc.id };
    rows.set(doc.id, { ...row, when: Math.max(row.when ?? 0, doc.updated_ms) });
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
    link.textContent = doc.id;
    item.append(link);
    if (doc.role === 'read') item.append(' ', Object.assign(document.createElement('span'), { className: 'access', textContent: 'view only' }));
    if (doc.when) {
      const when = document.createElement('time');
      when.dateTime = new Date(doc.when).toISOString();
      when.textContent = new Date(doc.when).toLocaleString();
      item.append(' ', when);
    }
    list.append(item);
  }
}

load();
