//! Test harness: the real `doc-server` binary on port 0, a protocol client written from
//! PROTOCOL.md (tokio-tungstenite plus a `crdt_core::Document`), and a tiny HTTP client.
//!
//! Each test binary uses a different subset of these helpers, hence the `dead_code` allowance
//! and `unused_imports` on this module only.
#![allow(dead_code, unused_imports)]

pub mod client;
pub mod cluster;
pub mod server;

pub use client::{Client, Event};
pub use server::{http_get, http_request, metric, tmp_dir, Server};

use std::time::Duration;

use crdt_core::VersionVector;

/// How long any single wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// A seed from `TEST_SEED` or the clock, printed so a failure can be replayed.
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var("TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    });
    eprintln!("{test}: TEST_SEED={seed}");
    seed
}

/// Settles every client, then waits until each has every change; asserts they agree with each
/// other and with the server's HTTP value.
pub async fn converge(server: &Server, doc: &str, clients: &mut [Client]) {
    for client in clients.iter_mut() {
        client.settle().await.unwrap();
    }
    let mut all = VersionVector::new();
    for client in clients.iter() {
        all.merge(client.doc.version());
    }
    for client in clients.iter_mut() {
        client.reach(&all).await.unwrap();
    }
    let first = serde_json::to_value(clients[0].doc.value()).unwrap();
    for client in clients.iter() {
        assert_eq!(client.doc.version(), &all, "{} version", client.name);
        assert_eq!(client.doc.state_hash(), clients[0].doc.state_hash(), "{} hash", client.name);
        assert_eq!(serde_json::to_value(client.doc.value()).unwrap(), first, "{} value", client.name);
        client.doc.check_invariants();
    }
    let (status, content_type, body) = server.get(&format!("/docs/{doc}")).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/json");
    let served: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(served, first, "the HTTP value equals every client's");
}

pub fn all_tokens_present(client: &Client, owner: &Client, count: u64) {
    let tokens = client.doc.set("tokens");
    for n in 1..=count {
        let token = format!("{}-{n}", owner.name);
        assert!(tokens.contains(&token), "{} lacks {token}", client.name);
    }
}
