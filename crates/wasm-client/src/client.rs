//! [`Client`]: the JavaScript class over [`Session`]. Every method converts arguments, calls the
//! session and converts the result; errors become `JsError` here and nowhere else.
//!
//! Bytes cross as `Uint8Array`: frames for the WebSocket, encoded changes for the other tabs
//! (`BroadcastChannel`), saved state for IndexedDB. Each local edit returns the encoded changes
//! it made (for the other tabs); the frames for the server come from `nextFrame()`.
//!
//! A page that saves opens the document with `Client.openAs(replica)`, restores what it
//! stored (`restoreState`, `restoreChanges`, `restored`), edits with `edit` (which returns
//! nothing: the other tabs get the stored records), and saves with `takeUnsaved` (small
//! records to append) and `compact` (the whole state, when idle), reporting each write's
//! commit with `markSaved(takenThrough)`: own changes reach the server only after that.
//!
//! Such a page also keeps one author secret per document (32 random bytes, `setAuthor` before
//! the first `helloFrame`): it proves to the server that the page owns the replica ids its
//! earlier page opens edited as. When a connection closes, the page passes the close code to
//! `disconnected(code)`; `true` means the server refused the replica id (code 4002) and the
//! client now edits as a new one: connect again.

use crdt_core::protocol::{AuthorSecret, UserInfo};
use std::collections::BTreeMap;

use crdt_core::{codec, Change, ReplicaId};
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::session::{Session, BODY, LIKES, TAGS, TITLE, VIEWS};
use crate::WasmResult;

/// One document open in one page; see the crate docs.
#[wasm_bindgen]
pub struct Client {
    session: Session,
}

/// Plain JS objects (not `Map`s) and `null` for `None`, so that the page can use the result
/// as JSON.
fn to_js<T: Serialize>(value: &T) -> WasmResult<JsValue> {
    let serializer = serde_wasm_bindgen::Serializer::json_compatible();
    Ok(value.serialize(&serializer)?)
}

/// Encoded changes for the other tabs, or `undefined` when nothing changed.
fn encoded(changes: &[Change]) -> Option<Vec<u8>> {
    (!changes.is_empty()).then(|| codec::encode_changes(changes))
}

#[wasm_bindgen]
impl Client {
    /// An empty document, edited as a new random replica.
    #[wasm_bindgen(constructor)]
    pub fn new() -> Client {
        Client { session: Session::new(ReplicaId::random()) }
    }

    /// A document restored from `export()` bytes, edited as a new random replica.
    pub fn load(saved: &[u8]) -> WasmResult<Client> {
        Ok(Client { session: Session::load(saved, ReplicaId::random())? })
    }

    /// The document and the unacknowledged changes, for IndexedDB.
    pub fn export(&self) -> Vec<u8> {
        self.session.export()
    }

    /// An empty document edited as `replica` (a UUID string) by a page that saves: restore
    /// the stored state and records into it, then call `restored()`. Own changes are sent
    /// only after `markSaved` reports them stored.
    #[wasm_bindgen(js_name = openAs)]
    pub fn open_as(replica: &str) -> WasmResult<Client> {
        let uuid = uuid::Uuid::parse_str(replica)?;
        Ok(Client { session: Session::with_storage(ReplicaId::from(uuid)) })
    }

    /// Merges a stored compacted state (`compact()` or `export()` bytes).
    #[wasm_bindgen(js_name = restoreState)]
    pub fn restore_state(&mut self, saved: &[u8]) -> WasmResult<()> {
        Ok(self.session.restore_state(saved)?)
    }

    /// Applies a stored record (`takeUnsaved()` bytes), in the order they were taken.
    #[wasm_bindgen(js_name = restoreChanges)]
    pub fn restore_changes(&mut self, record: &[u8]) -> WasmResult<()> {
        Ok(self.session.restore_changes(record)?)
    }

    /// Ends a restore: what was restored counts as stored.
    pub fn restored(&mut self) {
        self.session.restored();
    }

    /// The changes taken in since the last call, as one record to append to storage (and to
    /// post to the other tabs once stored), or `undefined`. Call until `undefined`.
    #[wasm_bindgen(js_name = takeUnsaved)]
    pub fn take_unsaved(&mut self) -> Option<Vec<u8>> {
        self.session.take_unsaved()
    }

    /// The whole state, replacing the stored state and every record taken before it.
    pub fn compact(&mut self) -> Vec<u8> {
        self.session.compact()
    }

    /// The own change number that what `takeUnsaved`/`compact` returned reaches; pass it to
    /// `markSaved` when that write commits.
    #[wasm_bindgen(getter, js_name = takenThrough)]
    pub fn taken_through(&self) -> f64 {
        self.session.taken_through() as f64
    }

    /// Storage holds own changes up to `through` (a `takenThrough` value).
    #[wasm_bindgen(js_name = markSaved)]
    pub fn mark_saved(&mut self, through: f64) {
        self.session.mark_saved(through as u64);
    }

    /// Whether the next write must be `compact()` (merged state is not a list of changes).
    #[wasm_bindgen(getter, js_name = needsCompaction)]
    pub fn needs_compaction(&self) -> bool {
        self.session.needs_compaction()
    }

    /// The version vector as `{ replica: count }`, for tests and the curious.
    pub fn version(&self) -> WasmResult<JsValue> {
        let version: BTreeMap<String, u64> =
            self.session.doc().version().iter().map(|(replica, seq)| (replica.to_string(), seq)).collect();
        to_js(&version)
    }

    /// The length of the document's compact encoding (`codec::encode_snapshot`, history
    /// included), for tests and storage reports.
    #[wasm_bindgen(js_name = snapshotSize)]
    pub fn snapshot_size(&self) -> usize {
        codec::encode_snapshot(self.session.doc()).len()
    }

    /// Merges `export()` bytes of another tab or session; returns an event (`reset` tells
    /// whether the text changed).
    #[wasm_bindgen(js_name = mergeSaved)]
    pub fn merge_saved(&mut self, saved: &[u8]) -> WasmResult<JsValue> {
        to_js(&self.session.merge_saved(saved)?)
    }

    /// The author secret (32 bytes) this client proves its replicas with: random for a new
    /// client; a page that saves stores it with the document and sets it with `setAuthor`.
    #[wasm_bindgen(getter)]
    pub fn author(&self) -> Vec<u8> {
        self.session.author().0.to_vec()
    }

    /// Authors as `secret` (exactly 32 bytes, e.g. from `crypto.getRandomValues`, kept per
    /// document in the browser's storage) from the next `helloFrame` on.
    #[wasm_bindgen(js_name = setAuthor)]
    pub fn set_author(&mut self, secret: &[u8]) -> WasmResult<()> {
        let bytes: [u8; 32] = secret.try_into().map_err(|_| JsError::new("an author secret is exactly 32 bytes"))?;
        self.session.set_author(AuthorSecret(bytes));
        Ok(())
    }

    /// This page's replica id (a UUID string).
    #[wasm_bindgen(getter)]
    pub fn replica(&self) -> String {
        self.session.doc().replica().to_string()
    }

    // ---- Reads. ----

    /// The text.
    pub fn text(&self) -> String {
        self.session.body()
    }

    /// The text's length in UTF-16 code units (what CodeMirror's `doc.length` counts).
    #[wasm_bindgen(js_name = textLength)]
    pub fn text_length(&self) -> usize {
        self.session.doc().rga(BODY).map_or(0, |rga| rga.len_utf16())
    }

    /// The title (`undefined` if never set).
    pub fn title(&self) -> Option<String> {
        self.session.doc().register(TITLE).map(str::to_owned)
    }

    /// The tags, sorted.
    pub fn tags(&self) -> Vec<String> {
        self.session.doc().set(TAGS)
    }

    /// The number of likes.
    pub fn likes(&self) -> f64 {
        self.session.doc().counter(LIKES) as f64
    }

    /// The number of views.
    pub fn views(&self) -> f64 {
        self.session.doc().gcounter(VIEWS) as f64
    }

    /// The document's plain value as an object (the shape of the server's `GET /docs/{id}`).
    pub fn value(&self) -> WasmResult<JsValue> {
        to_js(&self.session.doc().value())
    }

    /// The state hash as 16 hex digits.
    #[wasm_bindgen(js_name = stateHash)]
    pub fn state_hash(&self) -> String {
        format!("{:016x}", self.session.doc().state_hash())
    }

    /// How many changes the server has not acknowledged.
    #[wasm_bindgen(js_name = pendingCount)]
    pub fn pending_count(&self) -> usize {
        self.session.pending_len()
    }

    /// `"down"`, `"joining"` or `"up"`.
    #[wasm_bindgen(js_name = linkState)]
    pub fn link_state(&self) -> String {
        self.session.link_state().to_owned()
    }

    // ---- Local edits (UTF-16 positions); each returns encoded changes for the other tabs. ----

    /// Replaces `from..to` by `text` (one CodeMirror change), returning nothing: the cheap
    /// keystroke of a page that saves, whose other tabs get the stored records.
    pub fn edit(&mut self, from: usize, to: usize, text: &str) -> WasmResult<()> {
        Ok(self.session.edit(from, to, text)?)
    }

    /// Replaces `from..to` by `text` (one CodeMirror change).
    pub fn replace(&mut self, from: usize, to: usize, text: &str) -> WasmResult<Option<Vec<u8>>> {
        Ok(encoded(&self.session.replace(from, to, text)?))
    }

    /// Inserts `text` at `pos`.
    pub fn insert(&mut self, pos: usize, text: &str) -> WasmResult<Option<Vec<u8>>> {
        self.replace(pos, pos, text)
    }

    /// Deletes `len` units at `pos`.
    pub fn delete(&mut self, pos: usize, len: usize) -> WasmResult<Option<Vec<u8>>> {
        self.replace(pos, pos + len, "")
    }

    /// Sets the title.
    #[wasm_bindgen(js_name = setTitle)]
    pub fn set_title(&mut self, title: &str) -> Vec<u8> {
        codec::encode_changes(&[self.session.set_title(title)])
    }

    /// Adds a tag.
    #[wasm_bindgen(js_name = addTag)]
    pub fn add_tag(&mut self, tag: &str) -> Vec<u8> {
        codec::encode_changes(&[self.session.add_tag(tag)])
    }

    /// Removes a tag; `undefined` if it was not there.
    #[wasm_bindgen(js_name = removeTag)]
    pub fn remove_tag(&mut self, tag: &str) -> WasmResult<Option<Vec<u8>>> {
        let change = self.session.remove_tag(tag)?;
        Ok(change.map(|change| codec::encode_changes(&[change])))
    }

    /// Likes (`true`, +1) or takes a like back (`false`, -1).
    pub fn like(&mut self, liked: bool) -> Vec<u8> {
        codec::encode_changes(&[self.session.like(liked)])
    }

    /// Counts one view.
    #[wasm_bindgen(js_name = addView)]
    pub fn add_view(&mut self) -> Vec<u8> {
        codec::encode_changes(&[self.session.add_view()])
    }

    // ---- Sync. ----

    /// The first frame of a connection. `token` is the access token of the page's link
    /// (the part after `#` in its address); leave it out when the server runs `--open`.
    #[wasm_bindgen(js_name = helloFrame)]
    pub fn hello_frame(&mut self, name: String, color: String, token: Option<String>) -> Vec<u8> {
        self.session.hello(UserInfo { name, color }, token.as_deref().unwrap_or(""))
    }

    /// After `diverged` was reported: the next connection rebuilds the document from the
    /// server's copy and re-applies the unacknowledged edits on top. Reconnect to start it.
    #[wasm_bindgen(js_name = startResync)]
    pub fn start_resync(&mut self) {
        self.session.start_resync();
    }

    /// The WebSocket closed, with its close `code` if it had one. Returns `true` when the
    /// server refused this client's replica id (code 4002: another live connection uses it):
    /// the client now edits as a new replica id (see `replica`); connect again, and its pending
    /// changes, the old id's included, go out on the new connection.
    pub fn disconnected(&mut self, code: Option<u16>) -> bool {
        self.session.disconnected_with(code)
    }

    /// The next batch of pending changes to send, or `undefined`. Call until `undefined`.
    #[wasm_bindgen(js_name = nextFrame)]
    pub fn next_frame(&mut self) -> Option<Vec<u8>> {
        self.session.next_frame()
    }

    /// What to tell the person about edits that were dropped because no frame could carry
    /// them (see `nextFrame`), or `undefined`. When it returns a message, reconnect: the next
    /// connection rebuilds the document from the server's copy.
    #[wasm_bindgen(js_name = takeNotice)]
    pub fn take_notice(&mut self) -> Option<String> {
        self.session.take_notice()
    }

    /// How many more characters the text may take in before the document reaches its size
    /// limit (deleted characters count). Refuse a paste above it before applying it.
    #[wasm_bindgen(js_name = textRoom)]
    pub fn text_room(&self) -> f64 {
        self.session.text_room() as f64
    }

    /// The size limit `textRoom` counts against, in characters (the server's default unless
    /// set).
    #[wasm_bindgen(getter, js_name = maxTextChars)]
    pub fn max_text_chars(&self) -> f64 {
        self.session.max_text_chars() as f64
    }

    /// Sets the size limit `textRoom` counts against.
    #[wasm_bindgen(js_name = setMaxTextChars)]
    pub fn set_max_text_chars(&mut self, max: f64) {
        self.session.set_max_text_chars(max as u64);
    }

    /// The presence frame for the local selection (UTF-16 `anchor` and `head`).
    #[wasm_bindgen(js_name = presenceFrame)]
    pub fn presence_frame(&self, anchor: usize, head: usize) -> Vec<u8> {
        self.session.presence(anchor, head)
    }

    /// Handles one frame from the server; returns an event object:
    /// `{ kind, deltas: [{type: "insert", pos, text} | {type: "delete", pos, len}], reset,
    /// changed, peersChanged, acked, diverged, message }`.
    pub fn receive(&mut self, frame: &[u8]) -> WasmResult<JsValue> {
        to_js(&self.session.receive(frame)?)
    }

    /// Applies changes another tab sent (the bytes a local edit returned there); returns an
    /// event like `receive`.
    #[wasm_bindgen(js_name = receiveFromTab)]
    pub fn receive_from_tab(&mut self, changes: &[u8]) -> WasmResult<JsValue> {
        to_js(&self.session.receive_from_tab(changes)?)
    }

    /// The other people here: `[{ connection, replica, name, color, anchor, head }]`, with
    /// `anchor`/`head` as current UTF-16 positions (or `undefined`).
    pub fn peers(&self) -> WasmResult<JsValue> {
        to_js(&self.session.peers())
    }
}

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

/// The body field's name, for pages that read the value JSON.
#[wasm_bindgen(js_name = bodyField)]
pub fn body_field() -> String {
    BODY.to_owned()
}
