// The document list (/): the server's documents, newest first, and a button for a new one.

const list = document.querySelector('#docs');

function newId() {
  const bytes = crypto.getRandomValues(new Uint8Array(9));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_');
}

document.querySelector('#new-doc').addEventListener('click', () => {
  location.href = `/d/${newId()}`;
});

async function load() {
  try {
    const response = await fetch('/docs');
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const docs = await response.json();
    docs.sort((a, b) => b.updated_ms - a.updated_ms);
    list.replaceChildren();
    if (docs.length === 0) {
      const empty = document.createElement('li');
      empty.className = 'empty';
      empty.textContent = 'No documents yet.';
      list.append(empty);
    }
    for (const doc of docs) {
      const item = document.createElement('li');
      const link = document.createElement('a');
      link.href = `/d/${encodeURIComponent(doc.id)}`;
      link.textContent = doc.id;
      const when = document.createElement('time');
      when.dateTime = new Date(doc.updated_ms).toISOString();
      when.textContent = new Date(doc.updated_ms).toLocaleString();
      item.append(link, ' ', when);
      list.append(item);
    }
  } catch (error) {
    list.replaceChildren();
    const item = document.createElement('li');
    item.className = 'empty';
    item.textContent = `Could not load the list (${error.message}).`;
    list.append(item);
  }
}

load();
