// Rebuilding the page's wasm client from what IndexedDB holds for a document.

/**
 * The page's client, edited as `replica`, from the stored states and records. A damaged state
 * or record is skipped (and logged) rather than blocking the document.
 * @param {typeof import('../../pkg/wasm_client.js').Client} Client the wasm client class
 * @param {string} replica
 * @param {{ states: Uint8Array[], records: Uint8Array[] }} saved
 */
export function restoreClient(Client, replica, { states, records }) {
  const client = Client.openAs(replica);
  for (const bytes of states) {
    try {
      client.restoreState(bytes);
    } catch (error) {
      console.error('skipping a stored state that does not load', error);
    }
  }
  for (const bytes of records) {
    try {
      client.restoreChanges(bytes);
    } catch (error) {
      console.error('skipping a stored record that does not load', error);
    }
  }
  client.restored();
  return client;
}
