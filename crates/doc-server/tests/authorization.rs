//! Capability links against the real binary (issue 18, must-show 1): the authorization matrix
//! {no token, bad signature, expired, other document, read-only, write, admin} × {read over the
//! WebSocket, write over the WebSocket, GET the document, list, metrics}. Every cell is either
//! allowed (and works) or refused with its documented code, and no refused write reaches the
//! document. Then: `POST /docs` links, `doc-server token`, origins and CORS.

mod common;

use std::time::Duration;

use common::client::connect_ws;
use common::{http_request, Client, Server, WAIT};
use crdt_core::protocol::{
    reject, AuthorSecret, ClientMsg, ServerMsg, UserInfo, CLOSE_TOKEN_EXPIRED, CLOSE_UNAUTHORIZED, PROTOCOL_VERSION,
};
use crdt_core::ReplicaId;
use doc_server::auth::{now_secs, Auth, Role, ANY_DOC};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

const DOC: &str = "matrix";
const SECRET: &[u8] = b"a test secret of thirty-two bytes or more, for tokens";

/// A server that requires tokens, signing with [`SECRET`].
fn secure_server(name: &str) -> (Server, std::path::PathBuf) {
    let dir = common::tmp_dir(name);
    let secret = dir.join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    let secret_arg = secret.to_str().unwrap().to_owned();
    let server = Server::start_exactly(&dir, &["--secret-file", &secret_arg], "info,doc_server=debug");
    (server, dir)
}

fn auth() -> Auth {
    Auth::new(SECRET.to_vec(), false).unwrap()
}

/// The matrix's rows: a name and the token presented (`None`: no token at all).
fn tokens() -> Vec<(&'static str, Option<String>)> {
    let auth = auth();
    let later = now_secs() + 3600;
    let foreign = Auth::new(b"another secret, thirty-two bytes or more long".to_vec(), false).unwrap();
    vec![
        ("no token", None),
        ("bad signature", Some(foreign.mint(DOC, Role::Admin, later))),
        ("expired", Some(auth.mint(DOC, Role::Admin, now_secs() - 5))),
        ("other document", Some(auth.mint("elsewhere", Role::Admin, later))),
        ("read-only", Some(auth.mint(DOC, Role::Read, later))),
        ("write", Some(auth.mint(DOC, Role::Write, later))),
        ("admin", Some(auth.mint(ANY_DOC, Role::Admin, later))),
    ]
}

/// What a WebSocket `Hello` with `token` gets: `Ok(())` for a `Welcome`, or the close code.
async fn ws_hello(server: &Server, token: Option<&str>) -> Result<(), u16> {
    let mut ws = connect_ws(server.addr, DOC).await.unwrap();
    let hello = ClientMsg::Hello {
        protocol: PROTOCOL_VERSION,
        replica: ReplicaId::random(),
        author: AuthorSecret::random(),
        version: Default::default(),
        user: UserInfo { name: "m".into(), color: "#000".into() },
        token: token.unwrap_or_default().to_owned(),
    };
    ws.send(Message::Binary(hello.encode().into())).await.unwrap();
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("an answer to the hello") {
            Some(Ok(Message::Binary(bytes))) => match ServerMsg::decode(&bytes).unwrap() {
                ServerMsg::Welcome { .. } => return Ok(()),
                ServerMsg::Error { .. } => {}
                other => panic!("unexpected {other:?}"),
            },
            Some(Ok(Message::Close(frame))) => return Err(u16::from(frame.expect("a close code").code)),
            Some(Ok(_)) => {}
            other => panic!("the socket ended without a close frame: {other:?}"),
        }
    }
}

/// A write over the WebSocket with `token`: `Ok(None)` applied, `Ok(Some(code))` rejected
/// batch, `Err(close code)` refused at the hello.
async fn ws_write(server: &Server, token: Option<&str>, text: &str) -> Result<Option<u16>, u16> {
    // A refused hello closes before any change could be sent.
    ws_hello(server, token).await?;
    let mut client = Client::new("writer");
    client.token = token.unwrap_or_default().to_owned();
    client.connect(server.addr, DOC).await.unwrap();
    let change = client.doc.insert_text("body", 0, text).unwrap();
    client.send_batch(vec![change]).await.unwrap();
    client.pump_until(WAIT, |c| c.inflight() == 0).await.unwrap();
    Ok(client.rejected_codes.first().copied())
}

async fn http(server: &Server, method: &str, path: &str, token: Option<&str>) -> (u16, Vec<u8>) {
    let header = token.map(|token| format!("Bearer {token}"));
    let headers: Vec<(&str, &str)> = header.iter().map(|value| ("Authorization", value.as_str())).collect();
    let (status, _, body) = http_request(server.addr, method, path, &headers).await;
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cell_of_the_authorization_matrix() {
    let (server, _dir) = secure_server("auth-matrix");
    let admin = auth().mint(ANY_DOC, Role::Admin, now_secs() + 3600);
    // Something to read: written with a write token.
    assert_eq!(ws_write(&server, Some(&auth().mint(DOC, Role::Write, now_secs() + 60)), "seed ").await, Ok(None));

    let mut table = Vec::new();
    for (name, token) in tokens() {
        let token = token.as_deref();
        let read = ws_hello(&server, token).await;
        let marker = format!("<{}>", name.replace(' ', "-"));
        let write = ws_write(&server, token, &marker).await;
        let (get, body) = http(&server, "GET", &format!("/docs/{DOC}"), token).await;
        let (list, _) = http(&server, "GET", "/docs", token).await;
        let (metrics, _) = http(&server, "GET", "/metrics", token).await;
        // What the document holds now, as an operator sees it.
        let (_, value) = http(&server, "GET", &format!("/docs/{DOC}"), Some(&admin)).await;
        let written = String::from_utf8_lossy(&value).contains(&marker);
        println!("{name:>15}: ws read {read:?}, ws write {write:?} (in the text: {written}), GET doc {get}, list {list}, metrics {metrics}");
        table.push((name, read, write, written, get, list, metrics));
        if get == 200 {
            assert!(String::from_utf8_lossy(&body).contains("seed"), "{name}: the document's value");
        }
    }

    let refused_at_hello = |code| (Err(code), Err(code));
    for (name, read, write, written, get, list, metrics) in table {
        let expected = match name {
            "no token" | "bad signature" | "other document" => {
                (refused_at_hello(CLOSE_UNAUTHORIZED), false, if name == "other document" { 403 } else { 401 }, 403)
            }
            "expired" => (refused_at_hello(CLOSE_TOKEN_EXPIRED), false, 401, 403),
            "read-only" => ((Ok(()), Ok(Some(reject::READ_ONLY))), false, 200, 403),
            "write" => ((Ok(()), Ok(None)), true, 200, 403),
            "admin" => ((Ok(()), Ok(None)), true, 200, 200),
            _ => unreachable!(),
        };
        let ((want_read, want_write), want_written, want_get, want_admin_routes) = expected;
        assert_eq!(read, want_read, "{name}: read over the WebSocket");
        assert_eq!(write, want_write, "{name}: write over the WebSocket");
        assert_eq!(written, want_written, "{name}: whether its write reached the document");
        assert_eq!(get, want_get, "{name}: GET /docs/{DOC}");
        // Without a valid token the server-wide routes say 401, with one that is not `*`
        // admin 403.
        let want_admin = match name {
            "no token" | "bad signature" | "expired" => 401,
            _ => want_admin_routes,
        };
        assert_eq!(list, want_admin, "{name}: GET /docs");
        assert_eq!(metrics, want_admin, "{name}: GET /metrics");
    }

    // Every refusal was counted, by reason.
    let (_, page) = http(&server, "GET", "/metrics", Some(&admin)).await;
    let page = String::from_utf8_lossy(&page);
    for reason in ["missing", "bad_signature", "expired", "forbidden"] {
        let count = common::metric(&page, &format!("doc_server_auth_refusals_total{{reason=\"{reason}\"}}"));
        assert!(count >= 1.0, "{reason}: {count}");
    }
    assert_eq!(common::metric(&page, "doc_server_read_only_rejections_total"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_document_comes_with_an_edit_and_a_view_link() {
    let (server, dir) = secure_server("auth-links");
    let (status, body) = http(&server, "POST", "/docs", None).await;
    assert_eq!(status, 201);
    let links: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let id = links["id"].as_str().unwrap().to_owned();
    assert!(id.len() >= 24, "an unguessable id: {id}");
    let token_of = |link: &serde_json::Value| link.as_str().unwrap().split_once('#').unwrap().1.to_owned();
    let (edit, view) = (token_of(&links["edit"]), token_of(&links["view"]));
    assert!(links["edit"].as_str().unwrap().starts_with(&format!("/d/{id}#")));

    let mut writer = Client::new("writer");
    writer.token = edit.clone();
    writer.connect(server.addr, &id).await.unwrap();
    let change = writer.doc.insert_text("body", 0, "hello").unwrap();
    writer.send_batch(vec![change]).await.unwrap();
    writer.pump_until(WAIT, |c| c.inflight() == 0).await.unwrap();
    assert!(writer.rejected_codes.is_empty());

    // The view link reads over HTTP too, and can make no links; the edit link makes both.
    let (status, body) = http(&server, "GET", &format!("/docs/{id}"), Some(&view)).await;
    assert_eq!((status, String::from_utf8_lossy(&body).contains("hello")), (200, true));
    assert_eq!(http(&server, "POST", &format!("/docs/{id}/links"), Some(&view)).await.0, 403);
    let (status, body) = http(&server, "POST", &format!("/docs/{id}/links"), Some(&edit)).await;
    assert_eq!(status, 200);
    let shared: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(shared["edit"].is_string() && shared["view"].is_string());

    // `doc-server token` signs with the same secret (read from the same file).
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_doc-server"))
        .args(["token", "--doc", &id, "--role", "read", "--expires-in", "1h", "--secret-file"])
        .arg(dir.join("secret"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed = String::from_utf8(output.stdout).unwrap();
    let minted = printed.lines().next().unwrap();
    assert_eq!(http(&server, "GET", &format!("/docs/{id}"), Some(minted)).await.0, 200);
    assert!(printed.lines().nth(1).unwrap().ends_with(&format!("/d/{id}#{minted}")), "{printed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_of_other_origins_cannot_connect_or_read_answers() {
    let dir = common::tmp_dir("auth-origin");
    let server = Server::start(&dir, &["--allow-origin", "https://app.example.com"]);
    let own = format!("http://{}", server.addr);
    let upgrade = |origin: &str| {
        let origin = origin.to_owned();
        let addr = server.addr;
        async move {
            let mut request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
                "ws://{addr}/ws/o"
            ))
            .unwrap();
            request.headers_mut().insert("Origin", origin.parse().unwrap());
            match tokio_tungstenite::connect_async(request).await {
                Ok(_) => 101,
                Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
                Err(error) => panic!("{error}"),
            }
        }
    };
    assert_eq!(upgrade(&own).await, 101, "the server's own pages");
    assert_eq!(upgrade("https://app.example.com").await, 101, "a listed origin");
    assert_eq!(upgrade("https://evil.example").await, 403, "another site's page");

    // CORS: a listed origin's preflight is answered and its answers carry the header; an
    // unlisted one gets neither.
    let preflight = |origin: &'static str| {
        let addr = server.addr;
        async move {
            let headers = [("Origin", origin), ("Access-Control-Request-Method", "GET")];
            http_request(addr, "OPTIONS", "/docs/o", &headers).await.0
        }
    };
    assert_eq!(preflight("https://app.example.com").await, 204);
    assert_eq!(preflight("https://evil.example").await, 403);
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// A POST with a JSON body and a bearer token.
async fn post_json(server: &Server, path: &str, token: &str, body: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.addr,
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response)).await.unwrap().unwrap();
    String::from_utf8_lossy(&response).split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_over_http_reaches_everyone_and_the_servers_replica_is_its_own() {
    let (server, _dir) = secure_server("auth-rename");
    let later = now_secs() + 3600;
    let (write, read) = (auth().mint(DOC, Role::Write, later), auth().mint(DOC, Role::Read, later));
    let mut reader = Client::new("reader");
    reader.token = read.clone();
    reader.connect(server.addr, DOC).await.unwrap();

    assert_eq!(post_json(&server, &format!("/docs/{DOC}/title"), &read, r#"{"title": "no"}"#).await, 403);
    assert_eq!(post_json(&server, &format!("/docs/{DOC}/title"), &write, r#"{"title": "Renamed"}"#).await, 204);
    reader.pump_until(WAIT, |c| c.doc.register("title") == Some("Renamed")).await.unwrap();
    assert_eq!(post_json(&server, &format!("/docs/{DOC}/title"), &write, r#"{"title": "Again"}"#).await, 204);
    reader.pump_until(WAIT, |c| c.doc.register("title") == Some("Again")).await.unwrap();
    // Both renames are one replica's: the version grows by one entry, not one per request.
    let server_replica = doc_server::doc_actor::server_replica(&doc_server::DocId::parse(DOC).unwrap());
    assert_eq!(reader.doc.version().get(server_replica), 2);

    // Nobody connects or writes as the server's replica.
    let mut ws = connect_ws(server.addr, DOC).await.unwrap();
    let hello = ClientMsg::Hello {
        protocol: PROTOCOL_VERSION,
        replica: server_replica,
        author: AuthorSecret::random(),
        version: Default::default(),
        user: UserInfo { name: "mallory".into(), color: "#000".into() },
        token: write.clone(),
    };
    ws.send(Message::Binary(hello.encode().into())).await.unwrap();
    let code = loop {
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(frame))) => break u16::from(frame.unwrap().code),
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(code, crdt_core::protocol::CLOSE_REPLICA_REFUSED);
}
