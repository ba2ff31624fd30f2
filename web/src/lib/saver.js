// Saves one document as the page edits it, without ever making a keystroke wait:
//
// - `schedule()` is all a keystroke does: it queues one microtask per turn of the event loop.
// - That microtask takes the changes made since the last one (`client.takeUnsaved()`, small
//   records) and appends them to IndexedDB in one transaction. While a write runs, more
//   keystrokes only mark that another write is due; it takes everything typed meanwhile.
// - The whole state (`client.compact()`) replaces the records only when the page is idle
//   (`IDLE_MS` after the last write), when it is hidden or closed, when the records outgrow the
//   state (so a write costs, amortized, what its records cost), or after a state merge.
// - When a write commits, the client may send what it holds (write-ahead: see store.js), and
//   the records go to the other tabs.

/** Compact after this long without writes. */
export const IDLE_MS = 2000;
/** Records below this many bytes never trigger a compaction by themselves. */
const MIN_LOG_BYTES = 1 << 20;

export class Saver {
  /**
   * @param {object} options
   * @param {import('./store.js').DocStore} options.store
   * @param {string} options.docId
   * @param {string} options.replica
   * @param {any} options.client the wasm `Client`
   * @param {number} options.stateBytes size of the stored state
   * @param {(records: Uint8Array[]) => void} options.onStored after each commit
   * @param {(busy: boolean) => void} options.onBusy whether something is not yet stored
   * @param {(error: any) => void} options.onError
   */
  constructor({ store, docId, replica, client, stateBytes, onStored, onBusy, onError }) {
    Object.assign(this, { store, docId, replica, client, stateBytes, onStored, onBusy, onError });
    this.nextRecord = 0;
    this.logBytes = 0;
    this.queued = false;
    this.writing = false;
    this.again = false;
    this.compactDue = false;
    this.idleTimer = null;
    this.run = this.run.bind(this);
    this.writes = 0;
    this.compactions = 0;
  }

  /** Something changed: save it soon. Constant time. */
  schedule() {
    if (this.queued) return;
    this.queued = true;
    if (!this.writing) this.onBusy(true);
    queueMicrotask(this.run);
  }

  /** Replace the records by the whole state at the next write (idle, hidden, closing). */
  compactSoon() {
    if (this.logBytes === 0 && !this.client.needsCompaction) return;
    this.compactDue = true;
    this.schedule();
  }

  /** A promise that settles once everything made so far is stored. */
  async settled() {
    while (this.queued || this.writing) await new Promise((resolve) => setTimeout(resolve, 5));
  }

  async run() {
    this.queued = false;
    if (this.writing) {
      this.again = true;
      return;
    }
    this.writing = true;
    try {
      do {
        this.again = false;
        const compact =
          this.compactDue || this.client.needsCompaction || this.logBytes > Math.max(MIN_LOG_BYTES, this.stateBytes);
        await (compact ? this.writeState() : this.appendRecords());
      } while (this.again);
    } catch (error) {
      this.onError(error);
    } finally {
      this.writing = false;
      this.onBusy(this.queued);
    }
    clearTimeout(this.idleTimer);
    if (this.logBytes > 0) this.idleTimer = setTimeout(() => this.compactSoon(), IDLE_MS);
  }

  takeRecords() {
    const records = [];
    let record;
    while ((record = this.client.takeUnsaved()) !== undefined) records.push(record);
    return records;
  }

  async appendRecords() {
    const records = this.takeRecords();
    if (records.length === 0) return;
    const through = this.client.takenThrough;
    const first = this.nextRecord;
    this.nextRecord += records.length;
    await this.store.append(this.docId, this.replica, first, records);
    this.writes += 1;
    for (const record of records) this.logBytes += record.byteLength;
    this.client.markSaved(through);
    this.onStored(records);
  }

  async writeState() {
    this.compactDue = false;
    // The records go to the other tabs; the state covers them in storage.
    const records = this.takeRecords();
    const bytes = this.client.compact();
    const through = this.client.takenThrough;
    const upTo = this.nextRecord;
    this.stateBytes = await this.store.compact(this.docId, this.replica, bytes, upTo);
    this.writes += 1;
    this.compactions += 1;
    this.logBytes = 0;
    this.client.markSaved(through);
    this.onStored(records);
  }
}
