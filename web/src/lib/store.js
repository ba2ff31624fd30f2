// IndexedDB persistence: one record per (document, replica), holding `Client.export()` bytes.
//
// Each page load edits as a new replica and writes only its own record, so two tabs never
// overwrite each other. Opening a document reads every record of it, merges them into one
// client and replaces them by that client's record, all in one readwrite transaction: no other
// tab can write in between, so nothing read is lost and nothing unread is deleted.

const DB_NAME = 'crdt-editor';
const STORE = 'sessions';

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

export async function openStore() {
  const open = indexedDB.open(DB_NAME, 1);
  open.onupgradeneeded = () => open.result.createObjectStore(STORE);
  return new DocStore(await request(open));
}

const range = (docId) => IDBKeyRange.bound([docId, ''], [docId, '\uffff']);

export class DocStore {
  constructor(db) {
    this.db = db;
    this.saving = new Map(); // key string -> { running: Promise, again: bytes getter | null }
  }

  /**
   * Builds the page's client from every saved record of `docId` (`build(records)` must be
   * synchronous: the transaction stays open only while requests are queued), stores it as one
   * record under its replica and deletes the records it absorbed.
   * @param {string} docId
   * @param {(records: Uint8Array[]) => {client: any}} build
   */
  open(docId, build) {
    return new Promise((resolve, reject) => {
      const tx = this.db.transaction(STORE, 'readwrite');
      const store = tx.objectStore(STORE);
      let built;
      const keys = store.getAllKeys(range(docId));
      keys.onsuccess = () => {
        const all = store.getAll(range(docId));
        all.onsuccess = () => {
          try {
            built = build(all.result.map((r) => r.bytes));
          } catch (error) {
            tx.abort();
            reject(error);
            return;
          }
          for (const key of keys.result) store.delete(key);
          store.put({ bytes: built.client.export(), savedMs: Date.now() }, [docId, built.client.replica]);
        };
      };
      tx.oncomplete = () => resolve(built);
      tx.onerror = () => reject(tx.error);
    });
  }

  /**
   * Saves `produce()` under (docId, replica). Calls made while a write is running coalesce
   * into one more write, which reads the state when it starts: the last state always lands.
   */
  save(docId, replica, produce) {
    const key = `${docId}\u0000${replica}`;
    const entry = this.saving.get(key);
    if (entry) {
      entry.again = true;
      return entry.done;
    }
    const state = { again: false, done: null };
    const run = async () => {
      do {
        state.again = false;
        const tx = this.db.transaction(STORE, 'readwrite');
        tx.objectStore(STORE).put({ bytes: produce(), savedMs: Date.now() }, [docId, replica]);
        await new Promise((resolve, reject) => {
          tx.oncomplete = resolve;
          tx.onerror = () => reject(tx.error);
          tx.onabort = () => reject(tx.error);
        });
      } while (state.again);
    };
    state.done = run().finally(() => this.saving.delete(key));
    this.saving.set(key, state);
    return state.done;
  }
}
