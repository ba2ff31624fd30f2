// IndexedDB persistence. Per document:
//
// - `replicas`: docId -> [replica ids], the browser's small pool of ids for the document. A tab
//   edits as one of them, held exclusively with a Web Lock for the page's lifetime, so reloads
//   reuse one id (one version-vector entry per browser) and two tabs open at once never share
//   one. The client only sends a change once it is stored (write-ahead), so a reused id never
//   mints a change number that someone else already has.
// - `states`: [docId, replica] -> { bytes, deflated? }, the compacted state (`Client.compact()`)
//   of that replica's tab, written when it is idle. The wasm writes its snapshots uncompressed
//   (it carries no compressor, issue 21), so an idle compaction stores them deflated by the
//   platform's `CompressionStream('deflate-raw')` (`deflated: true`); reading them back goes
//   through the wasm's inflater (`inflateState`), synchronously inside the transaction. The
//   state written when a document opens (inside that transaction, which an `await` would
//   commit) is stored as it is, until the next compaction.
// - `log`: [docId, replica, n] -> { bytes }, records of changes (`Client.takeUnsaved()`) that
//   tab appended after its state, written as it types.
//
// - `replicas` also holds, under the key `author:<docId>` (no document id contains a colon),
//   the document's author secret: 32 random bytes drawn once per browser profile and document.
//   Every hello carries it; the server keeps its hash for each replica id it first saw with it,
//   so this browser's pages, whatever id they edit as, own the changes of all its ids.
//
// Each tab writes only under its own replica, so two tabs never overwrite each other. Opening a
// document reads every state and record of it, builds one client from them, stores that as its
// own compacted state, and deletes what it absorbed, all in one readwrite transaction: no other
// tab can write in between, so nothing read is lost and nothing unread is deleted. Records of
// tabs that are still open (their lock is held) are read but left to them.
//
// Version 1 kept one `Client.export()` record per page load in `sessions`; opening a document
// reads those too, as states, and deletes them.

const DB_NAME = 'crdt-editor';
const SESSIONS = 'sessions';
const STATES = 'states';
const LOG = 'log';
const REPLICAS = 'replicas';

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error('transaction aborted'));
  });
}

/**
 * `bytes` as a raw deflate stream, or null where the platform has no `CompressionStream`.
 * @param {Uint8Array} bytes
 */
async function deflateRaw(bytes) {
  if (typeof CompressionStream !== 'function') return null;
  const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream('deflate-raw'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/**
 * @param {(bytes: Uint8Array) => Uint8Array} inflate the wasm's `inflateState`, for states
 *   stored deflated
 */
export async function openStore(inflate) {
  const open = indexedDB.open(DB_NAME, 2);
  open.onupgradeneeded = () => {
    const db = open.result;
    for (const name of [SESSIONS, STATES, LOG, REPLICAS]) {
      if (!db.objectStoreNames.contains(name)) db.createObjectStore(name);
    }
  };
  return new DocStore(await request(open), inflate);
}

/** Every key of `docId` in `states`, `log` and `sessions` starts with it. */
const range = (docId) => IDBKeyRange.bound([docId, ''], [docId, '\uffff']);
const lockName = (docId, replica) => `crdt-editor:${docId}:${replica}`;

/** Takes the Web Lock `name` if no one holds it, and holds it until the page goes away. */
function tryHold(name) {
  return new Promise((resolve, reject) => {
    navigator.locks
      .request(name, { ifAvailable: true }, (lock) => {
        resolve(lock !== null);
        return lock === null ? undefined : new Promise(() => {});
      })
      .catch(reject);
  });
}

function randomUuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export class DocStore {
  constructor(db, inflate) {
    this.db = db;
    this.inflate = inflate;
  }

  /**
   * The replica id this tab edits `docId` as: the first id of the browser's pool whose lock is
   * free (taken and held for the page's lifetime), or a new id added to the pool. Without Web
   * Locks (an insecure context), a fresh id that is not pooled, as two tabs could not tell
   * each other apart.
   */
  async claimReplica(docId) {
    if (!navigator.locks) return randomUuid();
    const tx = this.db.transaction(REPLICAS, 'readonly');
    const pool = (await request(tx.objectStore(REPLICAS).get(docId))) ?? [];
    for (const replica of pool) {
      if (await tryHold(lockName(docId, replica))) return replica;
    }
    const replica = randomUuid();
    if (!(await tryHold(lockName(docId, replica)))) throw new Error('a new replica id is already locked');
    const add = this.db.transaction(REPLICAS, 'readwrite');
    const store = add.objectStore(REPLICAS);
    const current = (await request(store.get(docId))) ?? [];
    if (!current.includes(replica)) store.put([...current, replica], docId);
    await done(add);
    return replica;
  }

  /**
   * The author secret of `docId` in this browser (32 bytes), drawn and stored on first use. One
   * readwrite transaction, so two tabs opening a new document at once agree on one secret.
   * @returns {Promise<Uint8Array>}
   */
  async authorSecret(docId) {
    const tx = this.db.transaction(REPLICAS, 'readwrite');
    const store = tx.objectStore(REPLICAS);
    const key = `author:${docId}`;
    let secret = await request(store.get(key));
    if (!(secret instanceof Uint8Array) || secret.length !== 32) {
      secret = crypto.getRandomValues(new Uint8Array(32));
      store.put(secret, key);
    }
    await done(tx);
    return secret;
  }

  /** The pool of replica ids for `docId` (tests and the curious). */
  async pool(docId) {
    const tx = this.db.transaction(REPLICAS, 'readonly');
    return (await request(tx.objectStore(REPLICAS).get(docId))) ?? [];
  }

  /**
   * Builds the page's client from every stored state and record of `docId` (`build` must be
   * synchronous: the transaction stays open only while requests are queued), stores it as
   * `replica`'s compacted state and deletes the states and records it absorbed: its own and
   * those of replicas no open tab holds.
   * @param {string} docId
   * @param {string} replica this tab's id, from `claimReplica`
   * @param {(saved: {states: Uint8Array[], records: Uint8Array[]}) => any} build returns a client
   * @returns {Promise<{client: any, stateBytes: number}>}
   */
  async open(docId, replica, build) {
    const held = new Set();
    if (navigator.locks) {
      const { held: locks = [] } = await navigator.locks.query();
      for (const lock of locks) if (lock.name.startsWith(lockName(docId, ''))) held.add(lock.name);
    }
    const absorbed = (key) => key[1] === replica || !held.has(lockName(docId, key[1]));
    const tx = this.db.transaction([SESSIONS, STATES, LOG], 'readwrite');
    const sessions = tx.objectStore(SESSIONS);
    const states = tx.objectStore(STATES);
    const log = tx.objectStore(LOG);
    const reads = [sessions, states, log].map((store) =>
      Promise.all([request(store.getAllKeys(range(docId))), request(store.getAll(range(docId)))]),
    );
    let result;
    // The requests are queued at once; the last one's success runs while the transaction is
    // still active, so the writes below belong to it.
    const finished = done(tx);
    const [[oldKeys, oldValues], [stateKeys, stateValues], [logKeys, logValues]] = await Promise.all(reads);
    try {
      // This tab's own state first: restoring it is a decode, not a merge.
      const order = stateKeys.map((key, i) => i).sort((a, b) => (stateKeys[b][1] === replica) - (stateKeys[a][1] === replica));
      const state = (value) => (value.deflated ? this.inflate(value.bytes) : value.bytes);
      const saved = {
        states: [...order.map((i) => state(stateValues[i])), ...oldValues.map((v) => v.bytes)],
        records: logValues.map((v) => v.bytes),
      };
      const client = build(saved);
      for (const key of oldKeys) sessions.delete(key);
      for (const key of stateKeys) if (absorbed(key)) states.delete(key);
      for (const key of logKeys) if (absorbed(key)) log.delete(key);
      const bytes = client.compact();
      states.put({ bytes, savedMs: Date.now() }, [docId, replica]);
      result = { client, stateBytes: bytes.length, through: client.takenThrough };
    } catch (error) {
      tx.abort();
      throw error;
    }
    await finished;
    result.client.markSaved(result.through);
    return result;
  }

  /** Appends records to `replica`'s log as numbers `first`, `first + 1`, ... */
  async append(docId, replica, first, records) {
    const tx = this.db.transaction(LOG, 'readwrite');
    const log = tx.objectStore(LOG);
    records.forEach((bytes, i) => log.put({ bytes }, [docId, replica, first + i]));
    await done(tx);
  }

  /**
   * Stores `replica`'s compacted state (deflated, where the platform can) and deletes its log
   * records numbered below `upTo`; returns the bytes stored.
   */
  async compact(docId, replica, bytes, upTo) {
    const deflated = await deflateRaw(bytes);
    const value = deflated ? { bytes: deflated, deflated: true } : { bytes };
    const tx = this.db.transaction([STATES, LOG], 'readwrite');
    tx.objectStore(STATES).put({ ...value, savedMs: Date.now() }, [docId, replica]);
    if (upTo > 0) tx.objectStore(LOG).delete(IDBKeyRange.bound([docId, replica, 0], [docId, replica, upTo], false, true));
    await done(tx);
    return value.bytes.byteLength;
  }

  /** Bytes stored for `docId`: states and records of every replica (tests and the curious). */
  async storedBytes(docId) {
    const tx = this.db.transaction([SESSIONS, STATES, LOG], 'readonly');
    let total = 0;
    for (const name of [SESSIONS, STATES, LOG]) {
      for (const value of await request(tx.objectStore(name).getAll(range(docId)))) total += value.bytes.byteLength;
    }
    return total;
  }
}
