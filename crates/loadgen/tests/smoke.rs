//! The load tool against doc-server, small enough for CI (about 5 s): `loadgen run --smoke`
//! (10 clients × 20 keystrokes/s over 2 documents) against a server on a free loopback port,
//! which must deliver and acknowledge every keystroke, close no connection, and leave every
//! copy of each document equal.
//!
//! The server runs in this test's process (`doc_server::run`, the binary's code minus its
//! flag parsing), so the test needs no other package's binary; `scripts/load.sh` drives the
//! release binary itself.

use std::process::Command;
use std::sync::Arc;

use doc_server::storage::SqliteStore;
use doc_server::{AppState, Config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_smoke_run_against_doc_server() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("loadgen-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the data directory");
    let store = SqliteStore::open(&dir).expect("open the store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local address").to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let state = AppState::new(Config { open: true, ..Config::with_data_dir(dir.clone()) }, Arc::new(store));
    let server = tokio::spawn(doc_server::run(listener, state, async move {
        let _ = stopped.await;
    }));

    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_loadgen"))
            .args(["run", "--target", "ours", "--addr", &addr, "--smoke"])
            .output()
            .expect("run loadgen")
    })
    .await
    .expect("the loadgen process");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(output.status.success(), "loadgen failed ({})", output.status);
    assert!(stdout.contains("healthy: nothing lost, closed or diverged"), "{stdout}");
    assert!(stdout.contains("edit → ack: p50"), "acks were measured: {stdout}");

    let _ = stop.send(());
    server.await.expect("the server task").expect("a clean shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}
