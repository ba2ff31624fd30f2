//! One webhook call: the body, its signature, and the attempts (hyper's HTTP/1 client over a
//! plain TCP connection, one connection per attempt).

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, Uri};
use hmac::{Hmac, Mac};
use hyper_util::rt::TokioIo;
use sha2::Sha256;

use super::{Hook, Webhooks, ATTEMPT_TIMEOUT, FIRST_RETRY, MAX_ATTEMPTS};
use crate::feed::ChangeEvent;
use crate::metrics::Metrics;
use crate::DocId;

/// The longest webhook URL taken.
const MAX_URL_BYTES: usize = 2048;

/// Where a webhook is called: an `http://` URL, taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The URL as given.
    pub url: String,
    host: String,
    port: u16,
    /// `host[:port]`, for the `Host` header.
    authority: String,
    path: String,
}

impl Target {
    /// Parses `url`: `http://host[:port][/path][?query]`.
    pub fn parse(url: &str) -> Result<Target, String> {
        if url.len() > MAX_URL_BYTES {
            return Err(format!("a webhook URL has at most {MAX_URL_BYTES} bytes"));
        }
        let uri: Uri = url.parse().map_err(|error| format!("not a URL: {error}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err("https webhooks are not supported (the server has no TLS client): use http:// on a \
                            private network or a TLS-terminating proxy"
                    .to_owned())
            }
            _ => return Err("a webhook URL starts with http://".to_owned()),
        }
        let authority = uri.authority().ok_or("a webhook URL names a host")?;
        if authority.as_str().contains('@') {
            return Err("a webhook URL carries no user name or password".to_owned());
        }
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
        if host.is_empty() {
            return Err("a webhook URL names a host".to_owned());
        }
        Ok(Target {
            url: url.to_owned(),
            host,
            port: authority.port_u16().unwrap_or(80),
            authority: authority.as_str().to_owned(),
            path: uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
        })
    }
}

/// `v1=` and the hex HMAC-SHA256 of `timestamp + "." + body` under `secret`: the value of
/// `X-DocServer-Signature`.
pub fn sign(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(3 + 64);
    out.push_str("v1=");
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// The body of a call: the summary, with the event type and the webhook's id.
#[derive(serde::Serialize)]
struct CallBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    webhook: &'a str,
    #[serde(flatten)]
    summary: &'a ChangeEvent,
}

pub(super) fn body(webhook: &str, summary: &ChangeEvent) -> Vec<u8> {
    serde_json::to_vec(&CallBody { kind: "document.changed", webhook, summary }).unwrap_or_else(|error| {
        tracing::error!(%error, "a webhook body is not serializable");
        b"{}".to_vec()
    })
}

impl Webhooks {
    /// Calls `hook` with `body` until it answers 2xx or [`MAX_ATTEMPTS`] failed, waiting
    /// [`FIRST_RETRY`], then twice as long each time, between attempts.
    pub(super) async fn deliver(&self, doc: &DocId, hook: &Hook, body: Vec<u8>) {
        let counters = &self.metrics.http_api;
        for attempt in 1..=MAX_ATTEMPTS {
            if attempt > 1 {
                tokio::time::sleep(retry_delay(FIRST_RETRY, attempt - 1)).await;
                Metrics::inc(&counters.retries);
            }
            let result = {
                // Held while sending only, not while waiting to retry.
                let Ok(_permit) = self.sending.acquire().await else { return };
                tokio::time::timeout(ATTEMPT_TIMEOUT, attempt_once(hook, &body)).await
            };
            let error = match result {
                Ok(Ok(status)) if (200..300).contains(&status) => {
                    Metrics::inc(&counters.delivered);
                    tracing::debug!(doc_id = %doc, webhook = hook.id, attempt, "webhook delivered");
                    return;
                }
                Ok(Ok(status)) => format!("answered {status}"),
                Ok(Err(error)) => error,
                Err(_) => format!("no answer within {ATTEMPT_TIMEOUT:?}"),
            };
            Metrics::inc(&counters.attempt_failures);
            tracing::info!(doc_id = %doc, webhook = hook.id, url = hook.target.url, attempt, %error, "webhook attempt failed");
        }
        Metrics::inc(&counters.failed);
        tracing::warn!(doc_id = %doc, webhook = hook.id, url = hook.target.url, "webhook call given up");
    }
}

/// One attempt: connect, send, read the status line. The answer's body is not read.
async fn attempt_once(hook: &Hook, body: &[u8]) -> Result<u16, String> {
    let target = &hook.target;
    let stream = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|error| format!("connect: {error}"))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|error| error.to_string())?;
    // The connection is driven beside the request and closed with this attempt, also when the
    // attempt times out (the guard aborts it when dropped).
    let _driver = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let timestamp = crate::auth::now_secs();
    let request = Request::builder()
        .method(Method::POST)
        .uri(target.path.as_str())
        .header(header::HOST, target.authority.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, concat!("doc-server/", env!("CARGO_PKG_VERSION")))
        .header("x-docserver-webhook", hook.id.as_str())
        .header("x-docserver-timestamp", timestamp.to_string())
        .header("x-docserver-signature", sign(&hook.secret, timestamp, body))
        .body(Body::from(body.to_vec()))
        .map_err(|error| error.to_string())?;
    let answer = sender.send_request(request).await.map_err(|error| error.to_string())?;
    Ok(answer.status().as_u16())
}

/// Aborts its task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long the `attempt`th retry waits (1-based) with a first retry of `first`.
fn retry_delay(first: Duration, attempt: u32) -> Duration {
    first.saturating_mul(1 << (attempt - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_http_with_a_host() {
        let target = Target::parse("http://127.0.0.1:9000/hook?x=1").unwrap();
        assert_eq!((target.host.as_str(), target.port, target.path.as_str()), ("127.0.0.1", 9000, "/hook?x=1"));
        assert_eq!(Target::parse("http://example.com").unwrap().port, 80);
        assert_eq!(Target::parse("http://[::1]:81/").unwrap().host, "::1");
        for bad in ["https://a/", "ftp://a/", "/relative", "http://user:pw@a/", "nonsense"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Checked against `printf '%s' '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test`.
        assert_eq!(
            sign("whsec_test", 1_700_000_000, br#"{"a":1}"#),
            "v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
        );
        assert_ne!(sign("whsec_test", 1_700_000_001, br#"{"a":1}"#), sign("whsec_test", 1_700_000_000, br#"{"a":1}"#));
    }

    #[test]
    fn retries_wait_twice_as_long_each_time() {
        let first = Duration::from_millis(500);
        let delays: Vec<u64> = (1..MAX_ATTEMPTS).map(|n| retry_delay(first, n).as_millis() as u64).collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 8000]);
    }
}
