//! The browser client's files through the real binary, served like a real site: the encoding
//! chosen by `Accept-Encoding` among the precompressed files, `immutable` for hashed assets,
//! ETag and `304 Not Modified` for the pages and the service worker, and paths kept inside the
//! web directory.

mod common;

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;

use common::{Server, WAIT};
use flate2::read::GzDecoder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response: status, headers (names lower-cased, in order) and the body as sent.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(key, _)| key == name).map(|(_, value)| value.as_str()).collect()
    }
}

/// One GET with `headers` on its own connection; the body is read to the end as sent (the
/// server sends these files with a Content-Length, never chunked).
async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let extra: String = headers.iter().map(|(name, value)| format!("{name}: {value}\r\n")).collect();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send the request");
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response)).await.expect("an answer in time").expect("read");
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").expect("end of headers");
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let mut lines = head.lines();
    let status = lines.next().and_then(|line| line.split_whitespace().nth(1)).and_then(|code| code.parse().ok());
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let answer = Answer { status: status.expect("a status code"), headers, body: response[split + 4..].to_vec() };
    assert!(answer.header("transfer-encoding").is_none(), "{path} was sent chunked");
    answer
}

/// A web directory as web/build.mjs lays it out, with a stand-in's precompressed variants
/// made here (gzip for real; the `.br` files hold marker bytes, as the server never decodes).
fn lay_out(web: &Path) {
    let write = |name: &str, bytes: &[u8]| {
        let path = web.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    };
    let gzip = |bytes: &[u8]| {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut encoder, bytes).unwrap();
        encoder.finish().unwrap()
    };
    let script = "console.log('editor');".repeat(50);
    write("editor.html", b"<!doctype html><title>editor</title><script src=\"/assets/editor-ABCD2345.js\"></script>");
    write(
        "editor.html.gz",
        &gzip(b"<!doctype html><title>editor</title><script src=\"/assets/editor-ABCD2345.js\"></script>"),
    );
    write("index.html", b"<!doctype html><title>index</title>");
    write("sw.js", b"self.addEventListener('fetch', () => {});");
    write("assets/editor-ABCD2345.js", script.as_bytes());
    write("assets/editor-ABCD2345.js.gz", &gzip(script.as_bytes()));
    write("assets/editor-ABCD2345.js.br", b"brotli stand-in");
    write("assets/wasm_client_bg-WXYZ6789.wasm", b"\0asm\x01\0\0\0");
    write("assets/wasm_client_bg-WXYZ6789.wasm.br", b"brotli wasm stand-in");
    write("assets/style.css", b"body { margin: 0 }");
    write("secret.txt", b"outside the assets directory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_are_precompressed_hashed_immutable_and_pages_revalidate() {
    let dir = common::tmp_dir("assets");
    lay_out(&dir.join("web"));
    let server = Server::start(&dir, &[]);
    let addr = server.addr;
    let script = "console.log('editor');".repeat(50);

    // The encoding follows Accept-Encoding: brotli first, then gzip, then the file itself.
    let chromium = [("Accept-Encoding", "gzip, deflate, br, zstd")];
    let br = get(addr, "/assets/editor-ABCD2345.js", &chromium).await;
    assert_eq!(br.status, 200);
    assert_eq!(br.header("content-encoding"), Some("br"));
    assert_eq!(br.header("content-type"), Some("text/javascript; charset=utf-8"));
    assert_eq!(br.body, b"brotli stand-in");
    assert_eq!(br.header("vary"), Some("Accept-Encoding"));
    assert_eq!(br.header("cache-control"), Some("public, max-age=31536000, immutable"));

    let gz = get(addr, "/assets/editor-ABCD2345.js", &[("Accept-Encoding", "gzip;q=1, br;q=0")]).await;
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    let mut unzipped = String::new();
    GzDecoder::new(gz.body.as_slice()).read_to_string(&mut unzipped).unwrap();
    assert_eq!(unzipped, script);
    assert_eq!(gz.header("vary"), Some("Accept-Encoding"));

    let plain = get(addr, "/assets/editor-ABCD2345.js", &[]).await;
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.body, script.as_bytes());
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
    // One ETag per representation.
    let tags = [br.header("etag"), gz.header("etag"), plain.header("etag")];
    assert!(tags.iter().all(Option::is_some), "{tags:?}");
    assert!(tags[0] != tags[1] && tags[1] != tags[2] && tags[0] != tags[2], "{tags:?}");

    // The wasm has no gzip variant: a gzip-only client gets the file itself, as application/wasm.
    let wasm = get(addr, "/assets/wasm_client_bg-WXYZ6789.wasm", &[("Accept-Encoding", "gzip")]).await;
    assert_eq!((wasm.status, wasm.header("content-encoding")), (200, None));
    assert_eq!(wasm.header("content-type"), Some("application/wasm"));
    assert_eq!(wasm.body, b"\0asm\x01\0\0\0");
    let wasm = get(addr, "/assets/wasm_client_bg-WXYZ6789.wasm", &chromium).await;
    assert_eq!(wasm.header("content-encoding"), Some("br"));
    assert_eq!(wasm.header("content-type"), Some("application/wasm"));

    // An unhashed asset may change under its name: revalidated, not immutable.
    let style = get(addr, "/assets/style.css", &chromium).await;
    assert_eq!((style.status, style.header("cache-control")), (200, Some("no-cache")));
    assert_eq!(style.header("content-encoding"), None, "no variant beside it");

    // Pages and the service worker: no-cache with an ETag, 304 when it still matches.
    for (path, body_start) in [("/d/my-doc", "<!doctype html><title>editor"), ("/", "<!doctype"), ("/sw.js", "self.")] {
        let first = get(addr, path, &[]).await;
        assert_eq!(first.status, 200, "{path}");
        assert!(String::from_utf8_lossy(&first.body).starts_with(body_start), "{path}");
        assert_eq!(first.header("cache-control"), Some("no-cache"), "{path}");
        let etag = first.header("etag").expect("an ETag").to_owned();
        let again = get(addr, path, &[("If-None-Match", &etag)]).await;
        assert_eq!(again.status, 304, "{path}");
        assert!(again.body.is_empty(), "{path}: a 304 has no body");
        assert_eq!(again.header("etag"), Some(etag.as_str()));
        assert_eq!(again.header("cache-control"), Some("no-cache"));
        let stale = get(addr, path, &[("If-None-Match", "\"0-0\"")]).await;
        assert_eq!(stale.status, 200, "{path}: another tag gets the file");
    }
    assert_eq!(get(addr, "/sw.js", &[]).await.header("content-type"), Some("text/javascript; charset=utf-8"));
    let page = get(addr, "/d/my-doc", &chromium).await;
    assert_eq!(page.header("content-encoding"), Some("gzip"), "the page's only variant is gzip");
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    let etag = page.header("etag").unwrap().to_owned();
    assert_eq!(get(addr, "/d/other-doc", &[("If-None-Match", &etag), chromium[0]]).await.status, 304);
    assert_eq!(get(addr, "/d/other-doc", &[("If-None-Match", &etag)]).await.status, 200, "identity has its own tag");

    // A rebuilt file gets a new tag: the old one no longer matches.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(dir.join("web/index.html"), "<!doctype html><title>rebuilt</title>").unwrap();
    let old = get(addr, "/", &[]).await;
    let etag = old.header("etag").unwrap().to_owned();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(dir.join("web/index.html"), "<!doctype html><title>rebuilt again</title>").unwrap();
    let new = get(addr, "/", &[("If-None-Match", &etag)]).await;
    assert_eq!(new.status, 200);
    assert!(String::from_utf8_lossy(&new.body).contains("rebuilt again"));

    // Paths stay inside the assets directory, encodings or not.
    for path in [
        "/assets/../secret.txt",
        "/assets/%2e%2e/secret.txt",
        "/assets/..%2fsecret.txt",
        "/assets/%2e%2e%2fsecret.txt",
        "/assets/..%5csecret.txt",
        "/assets//etc/passwd",
        "/assets/%00",
    ] {
        let answer = get(addr, path, &chromium).await;
        assert_ne!(answer.status, 200, "{path}");
        assert!(!String::from_utf8_lossy(&answer.body).contains("outside"), "{path}");
    }
    assert_eq!(get(addr, "/assets/missing-ABCD2345.js", &chromium).await.status, 404);
    // A precompressed file is not an asset of its own kind: asking for it by name gets the
    // bytes, but never as a page or with the encoding of something else.
    let raw_br = get(addr, "/assets/editor-ABCD2345.js.br", &chromium).await;
    assert_eq!(raw_br.header("content-type"), Some("application/octet-stream"));
    assert_eq!(raw_br.header("content-encoding"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_origin_page_keeps_both_vary_headers() {
    let dir = common::tmp_dir("assets-cors");
    lay_out(&dir.join("web"));
    let server = Server::start(&dir, &["--allow-origin", "http://app.example"]);
    let answer =
        get(server.addr, "/assets/editor-ABCD2345.js", &[("Origin", "http://app.example"), ("Accept-Encoding", "br")])
            .await;
    assert_eq!(answer.header("content-encoding"), Some("br"));
    let vary = answer.all("vary").join(", ");
    assert!(vary.contains("Accept-Encoding") && vary.contains("Origin"), "{vary}");
}
