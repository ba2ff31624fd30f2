//! The memory budget against the real binary (issue 18, limits): past `--memory-budget`, a new
//! document first makes the documents nobody has open unload (least recently used first), and
//! is refused with close 1013 only while every loaded document is in use. Nothing is lost: an
//! unloaded document loads again from the store.

mod common;

use std::time::Duration;

use common::{Client, Server, WAIT};

/// Opens `doc` as a new client; `Err` carries the close code when the server refused.
async fn open(server: &Server, doc: &str) -> Result<Client, String> {
    let mut client = Client::new(doc);
    client.connect(server.addr, doc).await?;
    Ok(client)
}

/// Types `chars` characters into `client`'s document and waits for the acks, then makes one
/// more small change a second later, so that the actor measures the document's size again.
async fn fill(client: &mut Client, chars: usize) {
    let text: String = "lorem ipsum dolor sit amet ".chars().cycle().take(chars).collect();
    let change = client.doc.insert_text("body", 0, &text).unwrap();
    client.send_batch(vec![change]).await.unwrap();
    client.pump_until(WAIT, |c| c.inflight() == 0).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let change = client.doc.insert_text("body", 0, ".").unwrap();
    client.send_batch(vec![change]).await.unwrap();
    client.pump_until(WAIT, |c| c.inflight() == 0).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_budget_idle_documents_make_room_and_busy_ones_refuse_newcomers() {
    let dir = common::tmp_dir("memory-budget");
    let server = Server::start(&dir, &["--memory-budget", "64KiB"]);

    // A document above the budget on its own, open in a page.
    let mut a = open(&server, "big-a").await.unwrap();
    fill(&mut a, 60_000).await;
    let used = server.metric("doc_server_document_memory_bytes").await;
    assert!(used > 65_536.0, "the document was measured: {used} bytes");

    // A newcomer to another document is refused for now: the only loaded one is in use.
    let refused = open(&server, "small-b").await.err().expect("refused while the budget is spent");
    assert!(refused.contains("memory budget"), "{refused}");
    assert_eq!(server.metric("doc_server_memory_refusals_total").await, 1.0);
    assert_eq!(server.metric("doc_server_open_documents").await, 1.0);

    // Once nobody has the big document open, the newcomer gets in and the big one unloads.
    let text = a.doc.text("body").unwrap();
    drop(a);
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut b = loop {
        match open(&server, "small-b").await {
            Ok(b) => break b,
            Err(error) if tokio::time::Instant::now() < deadline => {
                // The server may not have seen the close yet.
                assert!(error.contains("memory budget"), "{error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("still refused: {error}"),
        }
    };
    let change = b.doc.insert_text("body", 0, "small").unwrap();
    b.send_batch(vec![change]).await.unwrap();
    b.pump_until(WAIT, |c| c.inflight() == 0).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.metric("doc_server_open_documents").await != 1.0 {
        assert!(tokio::time::Instant::now() < deadline, "the idle document was not unloaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.metric("doc_server_memory_evictions_total").await, 1.0);

    // The unloaded document lost nothing: it loads again from the store, and it is the small
    // one's turn to make room (nobody has it open once its page closes).
    drop(b);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let again = open(&server, "big-a").await.unwrap();
    assert_eq!(again.doc.text("body").unwrap(), text);
}
