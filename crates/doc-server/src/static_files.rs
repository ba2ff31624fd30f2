//! The browser client's files served like a real site: the pages (`index.html`,
//! `editor.html`), the service worker (`sw.js`) and the files under `assets/`.
//!
//! - **Encoding.** `scripts/build-web.sh` writes `name.br` and `name.gz` beside each file; the
//!   answer is the first of brotli, gzip and the file itself that the request's
//!   `Accept-Encoding` accepts and that exists, with its `Content-Encoding`, the file's own
//!   `Content-Type`, and `Vary: Accept-Encoding` always (a cache must not hand a brotli body to
//!   a client that asked for none).
//! - **Caching.** A content-hashed asset (see [`is_hashed`]) never changes under its name:
//!   `Cache-Control: public, max-age=31536000, immutable`. Everything else (the pages, the
//!   service worker, unhashed assets) is `no-cache`: a browser keeps it but asks each time with
//!   `If-None-Match`, and an unchanged file answers `304 Not Modified` without a body.
//! - **ETag.** The file's length and modification time, plus the encoding: one tag per
//!   representation, computed from metadata without reading the file (as nginx does).
//!
//! **Invariant:** only regular files under the web directory are read; asset paths are
//! checked by [`safe_relative_path`] before anything touches the file system.

use std::path::{Component, Path, PathBuf};
use std::time::UNIX_EPOCH;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// How long a browser may keep a content-hashed file (a year, the longest the RFCs suggest).
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Kept, but revalidated on every use.
const REVALIDATE: &str = "no-cache";

/// One representation of a file: its bytes on disk and the encoding they carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Brotli,
    Gzip,
    Identity,
}

impl Encoding {
    /// The suffix of the precompressed file and of the ETag.
    fn suffix(self) -> &'static str {
        match self {
            Encoding::Brotli => ".br",
            Encoding::Gzip => ".gz",
            Encoding::Identity => "",
        }
    }

    fn header(self) -> Option<&'static str> {
        match self {
            Encoding::Brotli => Some("br"),
            Encoding::Gzip => Some("gzip"),
            Encoding::Identity => None,
        }
    }
}

/// The file at `path` as the answer to a request with `headers`, or `None` when there is no
/// such regular file. `immutable` picks the caching policy (see the module docs).
pub(crate) async fn serve(path: &Path, headers: &HeaderMap, immutable: bool) -> Option<Response> {
    let meta = tokio::fs::metadata(path).await.ok().filter(|meta| meta.is_file())?;
    let accepted = headers.get(header::ACCEPT_ENCODING).and_then(|value| value.to_str().ok()).unwrap_or("");
    let mut encoding = Encoding::Identity;
    for candidate in [Encoding::Brotli, Encoding::Gzip] {
        if accepts(accepted, candidate) && is_file(&with_suffix(path, candidate.suffix())).await {
            encoding = candidate;
            break;
        }
    }
    let modified = meta.modified().ok().and_then(|time| time.duration_since(UNIX_EPOCH).ok()).unwrap_or_default();
    let etag = format!("\"{:x}-{:x}{}\"", meta.len(), modified.as_nanos(), encoding.suffix());
    let mut response = if if_none_match(headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        // The file may vanish between the two calls (a rebuild): answer as if it never was.
        let bytes = tokio::fs::read(with_suffix(path, encoding.suffix())).await.ok()?;
        let mut response = bytes.into_response();
        let out = response.headers_mut();
        out.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(path)));
        if let Some(name) = encoding.header() {
            out.insert(header::CONTENT_ENCODING, HeaderValue::from_static(name));
        }
        response
    };
    let out = response.headers_mut();
    out.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static(if immutable { IMMUTABLE } else { REVALIDATE }));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, value);
    }
    Some(response)
}

async fn is_file(path: &Path) -> bool {
    tokio::fs::metadata(path).await.is_ok_and(|meta| meta.is_file())
}

/// `path` with `suffix` appended to its file name (`a.js` + `.br` = `a.js.br`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Whether an `Accept-Encoding` value accepts `encoding` (RFC 9110 section 12.5.3: a coding
/// listed with `q=0` is refused, `*` stands for every coding not listed).
fn accepts(accept_encoding: &str, encoding: Encoding) -> bool {
    let Some(name) = encoding.header() else {
        return true;
    };
    let mut wildcard = None;
    for item in accept_encoding.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let quality = parts
            .filter_map(|param| param.trim().strip_prefix("q=").or_else(|| param.trim().strip_prefix("Q=")))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if coding.eq_ignore_ascii_case(name) || (name == "gzip" && coding.eq_ignore_ascii_case("x-gzip")) {
            return quality > 0.0;
        }
        if coding == "*" {
            wildcard = Some(quality > 0.0);
        }
    }
    wildcard.unwrap_or(false)
}

/// Whether `If-None-Match` names `etag` (weak comparison, as RFC 9110 asks for this header).
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    let Some(value) = headers.get(header::IF_NONE_MATCH).and_then(|value| value.to_str().ok()) else {
        return false;
    };
    value.split(',').map(str::trim).any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

/// Whether an asset's name carries a content hash: `<name>-<HASH>.<ext...>` where `HASH` is 8
/// or more characters of `A-Z` and `0-9` (the form esbuild writes, and web/build.mjs for the
/// files it hashes itself). Such a file never changes under its name.
pub(crate) fn is_hashed(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
        return false;
    };
    let stem = name.split('.').next().unwrap_or("");
    stem.rsplit_once('-').is_some_and(|(base, hash)| {
        !base.is_empty() && hash.len() >= 8 && hash.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    })
}

/// `path` as a relative path of normal components only.
pub(crate) fn safe_relative_path(path: &str) -> Option<PathBuf> {
    if path.is_empty() || path.contains('\\') || path.contains('\0') {
        return None;
    }
    let relative = PathBuf::from(path);
    relative.components().all(|component| matches!(component, Component::Normal(_))).then_some(relative)
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|ext| ext.to_str()) {
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("map" | "json") => "application/json",
        Some("html") => "text/html; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_paths_stay_inside_the_assets_directory() {
        assert_eq!(safe_relative_path("app.js"), Some(PathBuf::from("app.js")));
        assert_eq!(safe_relative_path("js/app.js"), Some(PathBuf::from("js/app.js")));
        for bad in ["", "../secret", "a/../../b", "/etc/passwd", "a\\b", "./a"] {
            assert_eq!(safe_relative_path(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn content_types_of_the_bundle() {
        assert_eq!(content_type(Path::new("a.js")), "text/javascript; charset=utf-8");
        assert_eq!(content_type(Path::new("a.css")), "text/css; charset=utf-8");
        assert_eq!(content_type(Path::new("a.wasm")), "application/wasm");
        assert_eq!(content_type(Path::new("a.js.map")), "application/json");
    }

    #[test]
    fn accept_encoding_with_qualities_and_wildcards() {
        use Encoding::{Brotli, Gzip};
        let chromium = "gzip, deflate, br, zstd";
        assert!(accepts(chromium, Brotli) && accepts(chromium, Gzip));
        assert!(!accepts("", Brotli) && !accepts("", Gzip));
        assert!(!accepts("gzip", Brotli) && accepts("gzip", Gzip));
        assert!(!accepts("br;q=0, gzip", Brotli));
        assert!(accepts("BR ; q=0.5", Brotli));
        assert!(accepts("*", Brotli) && !accepts("*;q=0", Gzip));
        assert!(!accepts("br;q=0, *", Brotli) && accepts("br;q=0, *", Gzip));
        assert!(accepts("x-gzip", Gzip));
        assert!(accepts("anything at all", Encoding::Identity));
    }

    #[test]
    fn hashed_names_are_those_esbuild_writes() {
        for hashed in
            ["editor-7QXKZ3PA.js", "editor-7QXKZ3PA.js.map", "wasm_client_bg-AB12CD34.wasm", "a-b-ABCDEFGH.css"]
        {
            assert!(is_hashed(Path::new(hashed)), "{hashed}");
        }
        for plain in ["editor.js", "style.css", "my-document.js", "x-abc12345.js", "-ABCDEFGH.js", "a-ABC1234.js"] {
            assert!(!is_hashed(Path::new(plain)), "{plain}");
        }
    }

    #[test]
    fn if_none_match_lists_and_weak_tags() {
        let mut headers = HeaderMap::new();
        assert!(!if_none_match(&headers, "\"a\""));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"b\", W/\"a\""));
        assert!(if_none_match(&headers, "\"a\""));
        assert!(!if_none_match(&headers, "\"c\""));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(if_none_match(&headers, "\"c\""));
    }
}
