//! The HTTP API and webhooks against the real binary (issue 21, must-show 4): JSON edits reach a
//! WebSocket client live; text, value and past-version reads; refused edits change nothing;
//! SSE events; webhooks signed (checked here with an HMAC of our own), debounced, retried with
//! growing delays, persisted, and never slowing the acknowledgements of people typing.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Client, Server, WAIT};
use doc_server::auth::{now_secs, Auth, Role};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One HTTP/1.1 request with a body; the status, the content type and the body.
async fn request(addr: SocketAddr, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let auth = token.map(|token| format!("Authorization: Bearer {token}\r\n")).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response)).await.expect("an answer in time").unwrap();
    let text = String::from_utf8_lossy(&response).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole response");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|line| line.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-type")))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    (status, content_type, body.to_owned())
}

async fn post(addr: SocketAddr, path: &str, body: Value) -> Value {
    let (status, _, answer) = request(addr, "POST", path, None, &body.to_string()).await;
    assert!((200..300).contains(&status), "POST {path} {body}: {status} {answer}");
    serde_json::from_str(&answer).unwrap()
}

async fn get_text(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, _, body) = request(addr, "GET", path, None, "").await;
    (status, body)
}

/// An SSE stream: `(event, id, data)` of each event as it arrives.
struct Events {
    lines: tokio::io::Lines<BufReader<TcpStream>>,
}

impl Events {
    async fn open(addr: SocketAddr, path: &str, last_event_id: Option<&str>) -> Events {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let last = last_event_id.map(|id| format!("Last-Event-ID: {id}\r\n")).unwrap_or_default();
        let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{last}\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut lines = BufReader::new(stream).lines();
        let status = lines.next_line().await.unwrap().unwrap();
        assert!(status.contains(" 200 "), "{status}");
        while !lines.next_line().await.unwrap().unwrap().is_empty() {}
        Events { lines }
    }

    /// The next event (chunk sizes and comments skipped).
    async fn next(&mut self, within: Duration) -> Option<(String, String, Value)> {
        let (mut event, mut id, mut data) = (String::new(), String::new(), String::new());
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.next_line()).await.ok()?.ok()??;
            if let Some(value) = line.strip_prefix("event:") {
                event = value.trim().to_owned();
            } else if let Some(value) = line.strip_prefix("id:") {
                id = value.trim().to_owned();
            } else if let Some(value) = line.strip_prefix("data:") {
                data.push_str(value.trim());
            } else if line.is_empty() && !data.is_empty() {
                return Some((event, id, serde_json::from_str(&data).unwrap()));
            }
        }
    }
}

#[tokio::test]
async fn json_edits_reach_a_websocket_client_live_and_reads_see_every_version() {
    let dir = common::tmp_dir("api-edits");
    let server = Server::start(&dir, &[]);
    let doc = "apidoc";
    let mut events = Events::open(server.addr, &format!("/docs/{doc}/events"), None).await;
    let (kind, id, start) = events.next(WAIT).await.expect("a state event");
    assert_eq!((kind.as_str(), id.as_str(), &start["changes"]), ("state", "0", &json!(0)));

    let mut alice = Client::new("alice");
    alice.connect(server.addr, doc).await.unwrap();
    let started = Instant::now();
    let first = post(
        server.addr,
        &format!("/docs/{doc}/edits"),
        json!({"edits": [
            {"op": "insert", "pos": 0, "text": "Hello wörld"},
            {"op": "set", "value": "From the API"},
            {"op": "add", "value": "api"},
            {"op": "increment", "by": 2}
        ]}),
    )
    .await;
    assert_eq!(first["changes"], 1, "{first}");
    assert_eq!(first["changed"], true);
    alice
        .pump_until(WAIT, |c| c.doc.text("body").as_deref() == Some("Hello wörld"))
        .await
        .expect("the WebSocket client sees the edit");
    eprintln!("edit answered and seen over the WebSocket in {:?}", started.elapsed());
    assert_eq!(alice.doc.register("title"), Some("From the API"));
    assert_eq!(alice.doc.set("tags"), ["api"]);
    assert_eq!(alice.doc.counter("likes"), 2);

    let (kind, id, change) = events.next(WAIT).await.expect("a change event");
    assert_eq!((kind.as_str(), id.as_str()), ("change", "1"));
    assert_eq!(change["new_changes"], 1);
    assert_eq!(change["fields"], json!(["body", "likes", "tags", "title"]));
    assert_eq!(change["authors"][0]["name"], "server");

    // The WebSocket client edits too; then the API deletes across both edits.
    let typed = alice.doc.insert_text("body", 5, ",").unwrap();
    alice.queue(typed);
    alice.settle().await.unwrap();
    let (_, id, _) = events.next(WAIT).await.expect("the client's change as an event");
    assert_eq!(id, "2");
    let second =
        post(server.addr, &format!("/docs/{doc}/edits"), json!({"edits": [{"op": "delete", "pos": 5, "len": 6}]}))
            .await;
    assert_eq!(second["changes"], 3);
    alice.pump_until(WAIT, |c| c.doc.text("body").as_deref() == Some("Hellod")).await.unwrap();

    let (status, content_type, text) = request(server.addr, "GET", &format!("/docs/{doc}/text"), None, "").await;
    assert_eq!((status, content_type.as_str(), text.as_str()), (200, "text/plain; charset=utf-8", "Hellod"));
    assert_eq!(get_text(server.addr, &format!("/docs/{doc}/text?at=1")).await, (200, "Hello wörld".to_owned()));
    assert_eq!(get_text(server.addr, &format!("/docs/{doc}/text?at=2")).await, (200, "Hello, wörld".to_owned()));
    // The version an answer gave reads back the same text, percent-encoded or not.
    let version: String = first["version"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(replica, seq)| format!("{replica}%3A{seq}"))
        .collect::<Vec<_>>()
        .join("%2C");
    let at_version = get_text(server.addr, &format!("/docs/{doc}/text?version={version}")).await;
    assert_eq!(at_version, (200, "Hello wörld".to_owned()));
    let (status, past) = get_text(server.addr, &format!("/docs/{doc}?at=1")).await;
    assert_eq!(status, 200);
    let past: Value = serde_json::from_str(&past).unwrap();
    assert_eq!(past["title"], "From the API", "{past}");
    let (status, body) = get_text(server.addr, &format!("/docs/{doc}/text?at=9")).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("has 3 changes"), "{body}");
    assert_eq!(get_text(server.addr, &format!("/docs/{doc}/text/notes")).await.0, 404);
    assert_eq!(get_text(server.addr, &format!("/docs/{doc}/text?at=x")).await.0, 400);
    assert_eq!(get_text(server.addr, "/docs/never-written/text").await.0, 404);

    // A reconnecting subscriber that has seen everything gets no state event, only new changes.
    let mut again = Events::open(server.addr, &format!("/docs/{doc}/events"), Some("3")).await;
    post(server.addr, &format!("/docs/{doc}/edits"), json!({"edits": [{"op": "increment"}]})).await;
    let (kind, id, _) = again.next(WAIT).await.unwrap();
    assert_eq!((kind.as_str(), id.as_str()), ("change", "4"));
}

#[tokio::test]
async fn bad_edits_get_clear_client_errors_and_change_nothing() {
    let dir = common::tmp_dir("api-refused");
    let server = Server::start(&dir, &["--max-text-chars", "20", "--max-fields", "4"]);
    let doc = "refused";
    let path = format!("/docs/{doc}/edits");
    post(server.addr, &path, json!({"edits": [{"op": "insert", "pos": 0, "text": "0123456789"}]})).await;
    let cases = [
        ("not json", "{\"edits\": [", 400, "not an edit request"),
        ("unknown op", r#"{"edits": [{"op": "paint", "pos": 0}]}"#, 400, "unknown variant"),
        ("missing pos", r#"{"edits": [{"op": "insert", "text": "x"}]}"#, 400, "pos"),
        ("unknown key", r#"{"edits": [], "extra": 1}"#, 400, "unknown field"),
        (
            "past the end",
            r#"{"edits": [{"op": "insert", "pos": 0, "text": "a"}, {"op": "insert", "pos": 99, "text": "x"}]}"#,
            422,
            "out of bounds",
        ),
        ("delete past the end", r#"{"edits": [{"op": "delete", "pos": 8, "len": 5}]}"#, 422, "out of bounds"),
        ("empty insert", r#"{"edits": [{"op": "insert", "pos": 0, "text": ""}]}"#, 422, "empty"),
        ("wrong kind", r#"{"edits": [{"op": "add", "field": "body", "value": "x"}]}"#, 422, "is a text"),
        ("text limit", r#"{"edits": [{"op": "insert", "pos": 0, "text": "0123456789x"}]}"#, 413, "20 characters"),
        (
            "field limit",
            r#"{"edits": [{"op": "increment", "field": "a"}, {"op": "increment", "field": "b"}, {"op": "increment", "field": "c"}, {"op": "increment", "field": "d"}]}"#,
            413,
            "4 fields",
        ),
    ];
    for (name, body, code, says) in cases {
        let (status, content_type, answer) = request(server.addr, "POST", &path, None, body).await;
        assert_eq!(status, code, "{name}: {answer}");
        assert_eq!(content_type, "application/json", "{name}");
        assert!(answer.contains(says), "{name}: {answer}");
    }
    let (_, value) = get_text(server.addr, &format!("/docs/{doc}")).await;
    let value: Value = serde_json::from_str(&value).unwrap();
    assert_eq!(value, json!({"body": "0123456789"}), "nothing else applied");
    assert_eq!(get_text(server.addr, &format!("/docs/{doc}/text?at=1")).await.1, "0123456789");
    // The title route goes through the same checks now.
    let long = json!({"title": "t".repeat(1001)}).to_string();
    let (status, _, answer) = request(server.addr, "POST", &format!("/docs/{doc}/title"), None, &long).await;
    assert_eq!(status, 413, "{answer}");
}

const SECRET: &[u8] = b"a test secret of thirty-two bytes or more, for tokens";

#[tokio::test]
async fn the_api_takes_the_websocket_tokens() {
    let dir = common::tmp_dir("api-tokens");
    let secret = dir.join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    let server = Server::start_exactly(&dir, &["--secret-file", secret.to_str().unwrap()], "info,doc_server=debug");
    let auth = Auth::new(SECRET.to_vec(), false).unwrap();
    let later = now_secs() + 3600;
    let (read, write, other) = (
        auth.mint("secure", Role::Read, later),
        auth.mint("secure", Role::Write, later),
        auth.mint("else", Role::Admin, later),
    );
    let forged = Auth::new(b"another secret, thirty-two bytes or more long".to_vec(), false).unwrap().mint(
        "secure",
        Role::Admin,
        later,
    );
    let edit = r#"{"edits": [{"op": "insert", "pos": 0, "text": "ok"}]}"#;
    for (name, token, code) in [
        ("none", None, 401),
        ("forged", Some(&forged), 401),
        ("other doc", Some(&other), 403),
        ("read", Some(&read), 403),
    ] {
        let (status, _, body) =
            request(server.addr, "POST", "/docs/secure/edits", token.map(String::as_str), edit).await;
        assert_eq!(status, code, "{name}: {body}");
    }
    let (status, _, body) = request(server.addr, "POST", "/docs/secure/edits", Some(&write), edit).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, text) = request(server.addr, "GET", "/docs/secure/text", Some(&read), "").await;
    assert_eq!((status, text.as_str()), (200, "ok"));
    assert_eq!(request(server.addr, "GET", "/docs/secure/text", None, "").await.0, 401);
    assert_eq!(request(server.addr, "GET", "/docs/secure/events", None, "").await.0, 401);
    let hook = r#"{"url": "http://127.0.0.1:9/hook"}"#;
    assert_eq!(request(server.addr, "POST", "/docs/secure/webhooks", Some(&write), hook).await.0, 403, "admin only");
    assert_eq!(request(server.addr, "POST", "/webhooks", Some(&other), hook).await.0, 403, "admin * only");
}

/// A call a test receiver got.
#[derive(Clone, Debug)]
struct Call {
    at: Instant,
    path: String,
    timestamp: String,
    signature: String,
    body: String,
}

/// How a test receiver answers.
#[derive(Clone, Copy)]
enum Answer {
    Ok,
    Fail,
    Hang,
}

/// A tiny HTTP receiver on a free port: records every call and answers it as told.
async fn receiver(answer: Answer) -> (SocketAddr, Arc<Mutex<Vec<Call>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
    let record = Arc::clone(&calls);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let record = Arc::clone(&record);
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                reader.read_line(&mut line).await.unwrap();
                let path = line.split_whitespace().nth(1).unwrap_or_default().to_owned();
                let (mut length, mut timestamp, mut signature) = (0, String::new(), String::new());
                loop {
                    let mut header = String::new();
                    reader.read_line(&mut header).await.unwrap();
                    let header = header.trim_end();
                    if header.is_empty() {
                        break;
                    }
                    let (name, value) = header.split_once(':').unwrap();
                    match name.to_ascii_lowercase().as_str() {
                        "content-length" => length = value.trim().parse().unwrap(),
                        "x-docserver-timestamp" => timestamp = value.trim().to_owned(),
                        "x-docserver-signature" => signature = value.trim().to_owned(),
                        _ => {}
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).await.unwrap();
                let body = String::from_utf8(body).unwrap();
                record.lock().unwrap().push(Call { at: Instant::now(), path, timestamp, signature, body });
                let status = match answer {
                    Answer::Ok => "204 No Content",
                    Answer::Fail => "500 Internal Server Error",
                    Answer::Hang => {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        return;
                    }
                };
                let response = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = reader.into_inner().write_all(response.as_bytes()).await;
            });
        }
    });
    (addr, calls)
}

/// Whether `call` carries the signature of its timestamp and body under `secret` (computed
/// here from PROTOCOL.md, not by the server's code).
fn verifies(call: &Call, secret: &str) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{}.{}", call.timestamp, call.body).as_bytes());
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    call.signature == format!("v1={hex}")
}

async fn wait_for_calls(calls: &Arc<Mutex<Vec<Call>>>, count: usize, within: Duration) -> Vec<Call> {
    let deadline = Instant::now() + within;
    loop {
        let now = calls.lock().unwrap().clone();
        if now.len() >= count || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The p99 and the median of typed-and-acknowledged round trips of `client`: at least
/// `samples`, for at least `during`.
async fn ack_latency(client: &mut Client, samples: usize, during: Duration) -> (Duration, Duration) {
    let mut times = Vec::with_capacity(samples);
    let start = Instant::now();
    while times.len() < samples || start.elapsed() < during {
        let len = client.doc.rga("body").map_or(0, |rga| rga.len());
        let change = client.doc.insert_text("body", len, "k").unwrap();
        let started = Instant::now();
        client.queue(change);
        client.settle().await.unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    (times[times.len() * 99 / 100], times[times.len() / 2])
}

#[tokio::test]
async fn webhooks_are_signed_debounced_retried_and_never_slow_editing() {
    let (good, good_calls) = receiver(Answer::Ok).await;
    let (global, global_calls) = receiver(Answer::Ok).await;
    let dir = common::tmp_dir("api-webhooks");
    let global_url = format!("http://{global}/all");
    let mut server = Server::start(&dir, &["--webhook", &global_url]);
    let doc = "hooked";
    let created =
        post(server.addr, &format!("/docs/{doc}/webhooks"), json!({"url": format!("http://{good}/hook")})).await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{created}");
    let (status, list) = get_text(server.addr, &format!("/docs/{doc}/webhooks")).await;
    assert_eq!(status, 200);
    assert!(!list.contains(&secret), "a listing never shows the secret");
    let (status, _, refused) =
        request(server.addr, "POST", &format!("/docs/{doc}/webhooks"), None, r#"{"url": "https://a.example/"}"#).await;
    assert_eq!(status, 400, "{refused}");

    // One edit: a correctly signed call within 2 s.
    let edited = Instant::now();
    post(server.addr, &format!("/docs/{doc}/edits"), json!({"edits": [{"op": "insert", "pos": 0, "text": "hi"}]}))
        .await;
    let calls = wait_for_calls(&good_calls, 1, Duration::from_secs(2)).await;
    assert_eq!(calls.len(), 1, "a call within 2 s");
    let call = &calls[0];
    eprintln!("webhook called {:?} after the edit", call.at - edited);
    assert_eq!(call.path, "/hook");
    assert!(verifies(call, &secret), "the signature verifies with the webhook's secret");
    assert!(!verifies(call, "whsec_wrong"), "and not with another");
    let mut altered = call.clone();
    altered.body = altered.body.replace("\"changes\":1", "\"changes\":2");
    assert_ne!(altered.body, call.body);
    assert!(!verifies(&altered, &secret), "nor for another body");
    let age = now_secs().abs_diff(call.timestamp.parse::<u64>().unwrap());
    assert!(age <= 5, "a current timestamp");
    let body: Value = serde_json::from_str(&call.body).unwrap();
    assert_eq!(
        (body["type"].as_str(), body["doc"].as_str(), &body["changes"]),
        (Some("document.changed"), Some(doc), &json!(1))
    );
    assert_eq!(body["webhook"], created["id"]);

    // The global flag webhook got it too, signed with the secret `webhook-secret` prints.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_doc-server"))
        .args(["webhook-secret", "--url", &global_url, "--data-dir"])
        .arg(dir.join("data"))
        .output()
        .unwrap();
    let global_secret = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let calls = wait_for_calls(&global_calls, 1, Duration::from_secs(2)).await;
    assert!(verifies(&calls[0], &global_secret), "{global_secret}");

    // Debounced: 30 edits over the WebSocket in ~300 ms make a handful of calls, the last
    // with the final version.
    let mut alice = Client::new("alice");
    alice.connect(server.addr, doc).await.unwrap();
    let before = good_calls.lock().unwrap().len();
    let typing = Instant::now();
    for _ in 0..30 {
        let change = alice.doc.insert_text("body", 0, "x").unwrap();
        alice.queue(change);
        alice.settle().await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (total, typing) = (alice.doc.version().total(), typing.elapsed());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let calls = good_calls.lock().unwrap()[before..].to_vec();
    eprintln!("{} webhook calls for 30 edits typed in {typing:?}", calls.len());
    let most = typing.as_millis() as usize / 500 + 2;
    assert!((1..=most).contains(&calls.len()), "{} calls for 30 edits in {typing:?}", calls.len());
    let last: Value = serde_json::from_str(&calls.last().unwrap().body).unwrap();
    assert_eq!(last["changes"], total);
    let summed: u64 =
        calls.iter().map(|c| serde_json::from_str::<Value>(&c.body).unwrap()["new_changes"].as_u64().unwrap()).sum();
    assert_eq!(summed, 30, "every change is counted in some call");
    for pair in calls.windows(2) {
        assert!(pair[1].at - pair[0].at >= Duration::from_millis(450), "at most one call per 500 ms");
    }

    // Editing latency without failing receivers, then with one answering 500 and one that
    // never answers, while their calls are retried.
    let (baseline_p99, baseline_median) = ack_latency(&mut alice, 200, Duration::from_secs(4)).await;
    let (failing, failing_calls) = receiver(Answer::Fail).await;
    let (hanging, _) = receiver(Answer::Hang).await;
    for url in [format!("http://{failing}/fail"), format!("http://{hanging}/hang")] {
        post(server.addr, &format!("/docs/{doc}/webhooks"), json!({"url": url})).await;
    }
    let retry_start = Instant::now();
    let (loaded_p99, loaded_median) = ack_latency(&mut alice, 200, Duration::from_secs(4)).await;
    eprintln!(
        "ack latency p99/median: {baseline_p99:?}/{baseline_median:?} without, {loaded_p99:?}/{loaded_median:?} \
         with failing receivers ({:?} of typing)",
        retry_start.elapsed()
    );
    assert!(
        loaded_p99 < Duration::from_millis(100) || loaded_p99 <= baseline_p99 * 2 + Duration::from_millis(20),
        "failing webhooks slowed editing: p99 {loaded_p99:?} against {baseline_p99:?}"
    );
    // Retried with growing delays: 0.5 s, 1 s, 2 s between the attempts of one call (typing
    // made several calls, 500 ms apart; the first one's attempts are compared).
    let deadline = Instant::now() + Duration::from_secs(8);
    let retries = loop {
        let attempts = failing_calls.lock().unwrap().clone();
        let first = attempts.first().map(|call| call.body.clone()).unwrap_or_default();
        let retries: Vec<Call> = attempts.into_iter().filter(|call| call.body == first).collect();
        if retries.len() >= 4 || Instant::now() > deadline {
            break retries;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(retries.len() >= 4, "the same call retried: {} attempts", retries.len());
    let gaps: Vec<Duration> = retries.windows(2).map(|w| w[1].at - w[0].at).collect();
    eprintln!("retry gaps: {gaps:?}");
    for (gap, expected) in gaps.iter().zip([500u64, 1000, 2000]) {
        let expected = Duration::from_millis(expected);
        assert!(
            *gap >= expected - Duration::from_millis(50) && *gap < expected * 2,
            "gap {gap:?}, expected {expected:?}"
        );
    }
    let metrics = server.get("/metrics").await.2;
    let page = String::from_utf8(metrics).unwrap();
    assert!(common::metric(&page, "doc_server_webhook_retries_total") >= 3.0);
    assert!(common::metric(&page, "doc_server_webhook_deliveries_total") >= 3.0);
    assert!(common::metric(&page, "doc_server_webhook_attempt_failures_total") >= 4.0);

    // Registered webhooks survive a restart; removing one stops it.
    server.terminate(Duration::from_secs(20));
    let server = Server::start(&dir, &["--webhook", &global_url]);
    let (_, list) = get_text(server.addr, &format!("/docs/{doc}/webhooks")).await;
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 3, "{list}");
    let id = created["id"].as_str().unwrap();
    let (status, _, _) = request(server.addr, "DELETE", &format!("/docs/{doc}/webhooks/{id}"), None, "").await;
    assert_eq!(status, 204);
    let (status, _, _) = request(server.addr, "DELETE", &format!("/docs/{doc}/webhooks/{id}"), None, "").await;
    assert_eq!(status, 404);
    let (_, list) = get_text(server.addr, "/webhooks").await;
    assert!(list.contains(&global_url) && list.contains("\"from_flag\":true"), "{list}");
}
