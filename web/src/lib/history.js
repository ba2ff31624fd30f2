// The History panel of the editor page: a slider over the document's past from the server
// (`GET /docs/{id}/history`), each version's text read-only with what changed since the
// previous point marked and who wrote each passage, and "Restore this version", which makes a
// new edit that brings that text back (the history itself is never rewritten).

const $ = (selector) => document.querySelector(selector);

/** The range of `next` that differs from `previous` (common prefix and suffix trimmed). */
export function changedRange(previous, next) {
  let start = 0;
  while (start < previous.length && start < next.length && previous[start] === next[start]) start++;
  let end = next.length;
  let endPrevious = previous.length;
  while (end > start && endPrevious > start && previous[endPrevious - 1] === next[end - 1]) {
    end--;
    endPrevious--;
  }
  return [start, end];
}

/**
 * Wires the panel of the page for document `docId`, read with `token` ('' without one); a
 * `readOnly` page cannot restore. `view` is the page's CodeMirror view; `showNotice` says things.
 */
export function setUpHistory({ docId, token, readOnly, view, showNotice }) {
  const auth = token ? { Authorization: `Bearer ${token}` } : {};
  /** The outline's points (`{upto, authors}`), and each version loaded. */
  let points = [];
  const versions = new Map();

  async function fetchJson(path) {
    const response = await fetch(path, { headers: auth });
    if (!response.ok) throw new Error((await response.text()) || `the server answered ${response.status}`);
    return response.json();
  }

  /** The version at point `index`: `{passages, changed: [from, to]}` (UTF-16 offsets). */
  async function version(index) {
    const upto = points[index].upto;
    if (!versions.has(upto)) {
      versions.set(upto, await fetchJson(`/docs/${encodeURIComponent(docId)}/history/${upto}`));
    }
    return versions.get(upto);
  }

  let shownVersion = '';
  async function showVersion(index) {
    const label = $('#history-label');
    const box = $('#history-text');
    try {
      const {
        passages: now,
        changed: [from, to],
      } = await version(index);
      const text = now.map((p) => p.text).join('');
      box.replaceChildren();
      let at = 0;
      for (const passage of now) {
        const span = document.createElement('span');
        span.className = 'passage';
        span.title = passage.author ? `written by ${passage.author}` : '';
        span.dataset.author = passage.author;
        const end = at + passage.text.length;
        // The part of this passage inside the changed range is marked.
        const cuts = [at, Math.min(Math.max(from, at), end), Math.min(Math.max(to, at), end), end];
        for (let i = 0; i < 3; i++) {
          const piece = text.slice(cuts[i], cuts[i + 1]);
          if (!piece) continue;
          if (i === 1) span.append(Object.assign(document.createElement('mark'), { textContent: piece }));
          else span.append(piece);
        }
        box.append(span);
        at = end;
      }
      shownVersion = text;
      const point = points[index];
      label.textContent = `${index + 1} of ${points.length} · by ${point.authors.join(', ') || 'nobody'}`;
    } catch (error) {
      label.textContent = `Could not load this version (${error.message}).`;
    }
  }

  async function openHistory() {
    const label = $('#history-label');
    label.textContent = 'Loading the history…';
    versions.clear();
    try {
      const outline = await fetchJson(`/docs/${encodeURIComponent(docId)}/history`);
      points = outline.points;
      if (outline.last) versions.set(points[points.length - 1].upto, outline.last);
    } catch (error) {
      label.textContent = `Could not load the history (${error.message}).`;
      return;
    }
    if (points.length === 0) {
      label.textContent = 'No edits yet.';
      $('#history-text').replaceChildren();
      return;
    }
    const slider = $('#history-slider');
    slider.max = String(points.length);
    slider.value = String(points.length);
    await showVersion(points.length - 1);
  }

  const button = $('#history-button');
  const slider = $('#history-slider');
  button.addEventListener('click', async () => {
    const panel = $('#history-panel');
    panel.hidden = !panel.hidden;
    button.setAttribute('aria-expanded', String(!panel.hidden));
    if (!panel.hidden) await openHistory();
  });
  slider.addEventListener('input', () => showVersion(Number(slider.value) - 1));
  const restore = $('#history-restore');
  restore.hidden = readOnly;
  // Restoring is a new edit that brings the old text back: the history is never rewritten,
  // and everyone sees it like any other edit.
  restore.addEventListener('click', () => {
    const current = view.state.doc.toString();
    const [from, to] = changedRange(current, shownVersion);
    const [, end] = changedRange(shownVersion, current);
    view.dispatch({ changes: { from, to: end, insert: shownVersion.slice(from, to) }, userEvent: 'input.restore' });
    showNotice('This version is restored: the text is back for everyone, and the history keeps both.', 4000);
  });
}
