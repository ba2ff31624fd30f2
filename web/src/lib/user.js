// Who this browser is, for the presence list and the name beside the cursor.

const KEY = 'crdt-editor:user';
/** The colours a person may get (their caret, label and dot). */
export const COLORS = [
  '#e91e63', '#3f51b5', '#009688', '#ff9800', '#9c27b0', '#4caf50',
  '#795548', '#2196f3', '#f44336', '#00acc1', '#8bc34a', '#673ab7',
];
const ANIMALS = ['Otter', 'Heron', 'Lynx', 'Badger', 'Falcon', 'Marten', 'Ibex', 'Puffin', 'Wren', 'Stoat'];

function pick(list) {
  return list[crypto.getRandomValues(new Uint32Array(1))[0] % list.length];
}

/** The stored user, or a new random one (stored). */
export function loadUser(storage = localStorage) {
  try {
    const user = JSON.parse(storage.getItem(KEY) ?? 'null');
    if (user && typeof user.name === 'string' && typeof user.color === 'string') return user;
  } catch {
    // A damaged entry is replaced below.
  }
  const user = { name: `${pick(ANIMALS)} ${Math.floor(Math.random() * 90 + 10)}`, color: pick(COLORS) };
  saveUser(user, storage);
  return user;
}

export function saveUser(user, storage = localStorage) {
  storage.setItem(KEY, JSON.stringify(user));
}
