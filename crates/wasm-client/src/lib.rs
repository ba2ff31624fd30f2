//! wasm-client: the browser's bindings over crdt-core (wasm-bindgen).
//!
//! The page (`web/`) holds one [`Client`] per open document. It feeds the client what the user
//! does (edits in UTF-16 positions, as CodeMirror reports them; title, tags, likes, a view) and
//! what arrives (WebSocket frames, changes from other tabs), and gets back bytes to send or
//! store and events describing what to redraw. The client keeps every change the server has
//! not acknowledged and resends it on the next connection.
//!
//! ```text
//!  CodeMirror ──replace(from, to, text)──▶ Client ──nextFrame()──▶ WebSocket
//!  CodeMirror ◀──event.deltas (UTF-16)──── Client ◀──receive(frame)── WebSocket
//!  other tabs ◀──records / receiveFromTab──▶ Client ──takeUnsaved() / compact()──▶ IndexedDB
//! ```
//!
//! Code map: [`session`] is the sync state machine in plain Rust (tested natively),
//! [`event`] the structs that become JS objects, [`saved`] the IndexedDB format, and
//! `client.rs` the `#[wasm_bindgen]` class, the only code that sees `JsValue`.
//!
//! **Architecture Invariant:** no CRDT logic here. Every merge, ordering and position mapping
//! is crdt-core's; this crate decides only what to send, what to keep and what to report.

mod client;
pub mod determinism;
pub mod event;
pub mod saved;
pub mod session;

pub use client::Client;

/// Errors cross into JavaScript as `JsError` (an `Error` with the message), converted at the
/// binding edge only.
pub type WasmResult<T> = Result<T, wasm_bindgen::JsError>;

/// Installs the panic hook, so that a Rust panic shows its message in the console.
/// Inflates a raw deflate stream: a stored state that `web/src/lib/store.js` compressed with
/// `CompressionStream('deflate-raw')` (the wasm has an inflater but no compressor).
#[wasm_bindgen::prelude::wasm_bindgen(js_name = inflateState)]
pub fn inflate_state(bytes: &[u8]) -> WasmResult<Vec<u8>> {
    Ok(crdt_core::codec::inflate(bytes)?)
}

/// [`determinism::sample`] for the Node test that compares the wasm build with the native one.
/// Only in builds with the `determinism` feature (`scripts/build-web.sh --determinism` writes
/// one to `web/pkg-determinism`): the page does not need it, and it is about 2 KB of the wasm
/// the page loads (issue 21).
#[cfg(feature = "determinism")]
#[wasm_bindgen::prelude::wasm_bindgen(js_name = determinismSample)]
pub fn determinism_sample(seed: u32) -> Vec<u8> {
    determinism::sample(seed as u64)
}

#[wasm_bindgen::prelude::wasm_bindgen(start)]
pub fn start() {
    #[cfg(feature = "console_error_panic_hook")]
    console_error_panic_hook::set_once();
}
