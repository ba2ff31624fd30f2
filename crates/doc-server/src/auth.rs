//! Capability tokens: who may read, write or administer a document ("anyone with the link").
//!
//! A token names one document (or `*`: every document, for operators), a [`Role`] and an
//! expiry, and carries an HMAC-SHA256 of those under the server's secret:
//!
//! ```text
//! v1.<role>.<doc>.<expires>.<mac>
//! role     r (read) | w (write) | a (admin)
//! doc      a document id, or * for every document
//! expires  Unix seconds
//! mac      base64url (no padding) of HMAC-SHA256(secret, "v1.<role>.<doc>.<expires>")
//! ```
//!
//! Doc ids never contain `.`, so the fields split unambiguously; the role is readable without
//! the secret (the page greys its editor for a view link), but only the server can make or
//! check one. A link carries its token in the URL fragment (`/d/{id}#<token>`), which browsers
//! never send in requests, so it stays out of access logs; the page presents it in its
//! `Hello`, and HTTP clients as `Authorization: Bearer <token>`.
//!
//! The secret is 32 bytes or more: from `--secret-file`, else `DOC_SERVER_SECRET`, else the
//! file `secret.key` in the data directory, drawn from the OS's random source on first start
//! (mode 0600). Changing it revokes every token.
//!
//! # Invariants
//! - A token is accepted only with a MAC made with this server's secret over exactly its
//!   fields (compared in constant time), before its expiry, for its own document or `*`.
//! - In `--open` mode every request is an admin: no token is asked for or checked.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::DocId;

/// The file in the data directory that holds a generated secret.
pub const SECRET_FILE: &str = "secret.key";
/// The environment variable a secret may come from.
pub const SECRET_ENV: &str = "DOC_SERVER_SECRET";
/// The fewest bytes a secret may have.
pub const MIN_SECRET_BYTES: usize = 32;
/// The document a token for every document names.
pub const ANY_DOC: &str = "*";

/// What a token lets its holder do, in increasing order: each role can do what the ones below
/// it can.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Receive the document and its presence.
    Read,
    /// Also send changes.
    Write,
    /// Also list documents and read metrics (with a `*` token), mint links of any role.
    Admin,
}

impl Role {
    fn letter(self) -> &'static str {
        match self {
            Role::Read => "r",
            Role::Write => "w",
            Role::Admin => "a",
        }
    }

    fn from_letter(letter: &str) -> Option<Role> {
        match letter {
            "r" => Some(Role::Read),
            "w" => Some(Role::Write),
            "a" => Some(Role::Admin),
            _ => None,
        }
    }

    /// Parses `read`, `write` or `admin`.
    pub fn parse(name: &str) -> Result<Role, String> {
        match name {
            "read" | "view" => Ok(Role::Read),
            "write" | "edit" => Ok(Role::Write),
            "admin" => Ok(Role::Admin),
            _ => Err(format!("unknown role {name:?}: use read, write or admin")),
        }
    }
}

/// What a token grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The document, or [`ANY_DOC`].
    pub doc: String,
    /// The role.
    pub role: Role,
    /// Unix seconds after which the token is refused.
    pub expires: u64,
}

/// Why a request was refused. The first four are "who are you" (HTTP 401, close 4003; 4004
/// for an expired token), the last two "not allowed" (HTTP 403, close 4003).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token was presented.
    #[error("an access token is required: open the document through its link")]
    Missing,
    /// The token is not of the form `v1.<role>.<doc>.<expires>.<mac>`.
    #[error("the access token is malformed")]
    Malformed,
    /// The MAC does not match: forged, altered, or made with another secret.
    #[error("the access token's signature is not valid")]
    BadSignature,
    /// The token expired.
    #[error("the access token expired: ask for a new link")]
    Expired,
    /// The token is valid but not for this document, or its role is below what is asked.
    #[error("the access token does not allow this: {0}")]
    Forbidden(String),
    /// A browser page of another origin, not on the `--allow-origin` list.
    #[error("pages of origin {0:?} may not use this server (see --allow-origin)")]
    Origin(String),
}

impl AuthError {
    /// The label of `doc_server_auth_refusals_total`.
    pub fn label(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Malformed => "malformed",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired => "expired",
            AuthError::Forbidden(_) => "forbidden",
            AuthError::Origin(_) => "origin",
        }
    }
}

/// Checks and mints tokens; see the module docs.
#[derive(Clone)]
pub struct Auth {
    /// `None` when no secret could be drawn: every token is refused.
    key: Option<Vec<u8>>,
    open: bool,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Auth").field("open", &self.open).finish_non_exhaustive()
    }
}

impl Auth {
    /// Tokens signed with `key` (at least [`MIN_SECRET_BYTES`]); with `open`, none is needed.
    pub fn new(key: Vec<u8>, open: bool) -> Result<Auth, String> {
        if key.len() < MIN_SECRET_BYTES {
            return Err(format!("the secret has {} bytes; use {MIN_SECRET_BYTES} or more", key.len()));
        }
        Ok(Auth { key: Some(key), open })
    }

    /// Tokens signed with a secret drawn now, valid until the process ends (tests, embedding);
    /// if the OS has no random source, every token is refused.
    pub fn ephemeral(open: bool) -> Auth {
        let mut key = vec![0u8; 32];
        let key = getrandom::fill(&mut key).is_ok().then_some(key);
        Auth { key, open }
    }

    /// The secret from `secret_file`, else [`SECRET_ENV`], else `<data_dir>/secret.key`
    /// (created with 32 random bytes, mode 0600, when absent).
    pub fn load_secret(secret_file: Option<&Path>, data_dir: &Path) -> Result<Vec<u8>, String> {
        if let Some(path) = secret_file {
            return read_secret(path);
        }
        if let Ok(value) = std::env::var(SECRET_ENV) {
            return Ok(value.trim().as_bytes().to_vec());
        }
        let path = data_dir.join(SECRET_FILE);
        if path.exists() {
            return read_secret(&path);
        }
        std::fs::create_dir_all(data_dir).map_err(|error| format!("{}: {error}", data_dir.display()))?;
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|error| format!("no random source for a secret: {error}"))?;
        let text = URL_SAFE_NO_PAD.encode(bytes);
        write_private(&path, text.as_bytes()).map_err(|error| format!("{}: {error}", path.display()))?;
        tracing::info!(path = %path.display(), "generated a new server secret");
        Ok(text.into_bytes())
    }

    /// Whether the server runs without tokens (`--open`).
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// A token granting `role` on `doc` (a document id or [`ANY_DOC`]) until `expires`.
    pub fn mint(&self, doc: &str, role: Role, expires: u64) -> String {
        let body = format!("v1.{}.{doc}.{expires}", role.letter());
        let mac = self.mac(&body).map(|mac| URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())).unwrap_or_default();
        format!("{body}.{mac}")
    }

    /// A secret derived from the server secret for `label` (base64url of
    /// HMAC-SHA256(secret, `"derive." + label`), a message no token's MAC covers): the secret
    /// of a `--webhook` flag. Empty without a secret.
    pub fn derive(&self, label: &str) -> String {
        self.mac(&format!("derive.{label}"))
            .map(|mac| URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
            .unwrap_or_default()
    }

    /// The key of relay tags (`relay.rs`): HMAC-SHA256(secret, `"derive.relay-key"`), so every
    /// server with this secret makes and accepts the same tags. Without a secret there is no
    /// key: every give-back is refused.
    pub fn relay_key(&self) -> crate::relay::RelayKey {
        crate::relay::RelayKey::new(self.mac("derive.relay-key").map(|mac| mac.finalize().into_bytes().into()))
    }

    /// What `token` grants, if it is one of ours and has not expired.
    pub fn verify(&self, token: &str) -> Result<Grant, AuthError> {
        let (body, mac) = token.rsplit_once('.').ok_or(AuthError::Malformed)?;
        let mut fields = body.split('.');
        let (Some("v1"), Some(role), Some(doc), Some(expires), None) =
            (fields.next(), fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(AuthError::Malformed);
        };
        let role = Role::from_letter(role).ok_or(AuthError::Malformed)?;
        let expires: u64 = expires.parse().map_err(|_| AuthError::Malformed)?;
        if doc != ANY_DOC && DocId::parse(doc).is_err() {
            return Err(AuthError::Malformed);
        }
        let mac = URL_SAFE_NO_PAD.decode(mac).map_err(|_| AuthError::Malformed)?;
        self.mac(body).ok_or(AuthError::BadSignature)?.verify_slice(&mac).map_err(|_| AuthError::BadSignature)?;
        if expires <= now_secs() {
            return Err(AuthError::Expired);
        }
        Ok(Grant { doc: doc.to_owned(), role, expires })
    }

    /// The role `token` grants on `doc` (`None`: the server-wide routes), if at least `need`.
    /// In `--open` mode, [`Role::Admin`] whatever the token.
    pub fn check(&self, token: Option<&str>, doc: Option<&DocId>, need: Role) -> Result<Role, AuthError> {
        if self.open {
            return Ok(Role::Admin);
        }
        let token = token.filter(|token| !token.is_empty()).ok_or(AuthError::Missing)?;
        let grant = self.verify(token)?;
        let covers = grant.doc == ANY_DOC || doc.is_some_and(|doc| doc.as_str() == grant.doc);
        if !covers {
            return Err(AuthError::Forbidden(match doc {
                Some(_) => "it is for another document".into(),
                None => "this needs a token for every document (*)".into(),
            }));
        }
        if grant.role < need {
            return Err(AuthError::Forbidden(format!("it grants {:?}, this needs {need:?}", grant.role)));
        }
        Ok(grant.role)
    }

    /// Whether a browser page of `origin` (an `Origin` header) may use a server reached as
    /// `host` (the `Host` header): its own origin, or one on `allowed` (`*`: any). A request
    /// without an `Origin` is not from a page of another site, and is allowed.
    pub fn origin_allowed(origin: Option<&str>, host: Option<&str>, allowed: &[String]) -> bool {
        let Some(origin) = origin else { return true };
        if allowed.iter().any(|entry| entry == "*" || entry.trim_end_matches('/') == origin) {
            return true;
        }
        let origin_host = origin.split_once("://").map(|(_, rest)| rest);
        origin_host.is_some_and(|origin_host| host.is_some_and(|host| host.eq_ignore_ascii_case(origin_host)))
    }

    fn mac(&self, body: &str) -> Option<Hmac<Sha256>> {
        // HMAC takes keys of any length; `new` checked it is long enough to be secret.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.as_deref()?).ok()?;
        mac.update(body.as_bytes());
        Some(mac)
    }
}

/// Unix seconds now.
pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn read_secret(path: &Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|error| format!("cannot read the secret {}: {error}", path.display()))?;
    Ok(bytes.trim_ascii().to_vec())
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::new(vec![7; 32], false).unwrap()
    }

    #[test]
    fn a_minted_token_grants_its_role_on_its_document_until_it_expires() {
        let auth = auth();
        let doc = DocId::parse("abc").unwrap();
        let other = DocId::parse("abd").unwrap();
        let later = now_secs() + 60;
        let write = auth.mint("abc", Role::Write, later);
        assert_eq!(auth.check(Some(&write), Some(&doc), Role::Read), Ok(Role::Write));
        assert_eq!(auth.check(Some(&write), Some(&doc), Role::Write), Ok(Role::Write));
        assert!(matches!(auth.check(Some(&write), Some(&doc), Role::Admin), Err(AuthError::Forbidden(_))));
        assert!(matches!(auth.check(Some(&write), Some(&other), Role::Read), Err(AuthError::Forbidden(_))));
        assert!(matches!(auth.check(Some(&write), None, Role::Read), Err(AuthError::Forbidden(_))));
        let expired = auth.mint("abc", Role::Write, now_secs() - 1);
        assert_eq!(auth.check(Some(&expired), Some(&doc), Role::Read), Err(AuthError::Expired));
        assert_eq!(auth.check(None, Some(&doc), Role::Read), Err(AuthError::Missing));
        assert_eq!(auth.check(Some(""), Some(&doc), Role::Read), Err(AuthError::Missing));
        let every = auth.mint(ANY_DOC, Role::Admin, later);
        assert_eq!(auth.check(Some(&every), None, Role::Admin), Ok(Role::Admin));
        assert_eq!(auth.check(Some(&every), Some(&other), Role::Write), Ok(Role::Admin));
    }

    #[test]
    fn altered_forged_and_foreign_tokens_are_refused() {
        let auth = auth();
        let doc = DocId::parse("abc").unwrap();
        let token = auth.mint("abc", Role::Read, now_secs() + 60);
        let (body, mac) = token.rsplit_once('.').unwrap();
        // The role raised, the document changed, the expiry pushed: the MAC no longer fits.
        for altered in [body.replace(".r.", ".w."), body.replace(".abc.", ".abd."), format!("{body}9")] {
            let forged = format!("{altered}.{mac}");
            assert!(
                matches!(
                    auth.check(Some(&forged), None, Role::Read),
                    Err(AuthError::BadSignature | AuthError::Forbidden(_))
                ),
                "{forged}"
            );
            assert_eq!(auth.verify(&forged), Err(AuthError::BadSignature), "{forged}");
        }
        let foreign = Auth::new(vec![8; 32], false).unwrap().mint("abc", Role::Read, now_secs() + 60);
        assert_eq!(auth.check(Some(&foreign), Some(&doc), Role::Read), Err(AuthError::BadSignature));
        for malformed in [
            "x",
            "v1.r.abc.1",
            "v2.r.abc.99999999999.AAAA",
            "v1.q.abc.99999999999.AAAA",
            "v1.r.a b.9.AA",
            "v1.r.abc.x.AA",
            "v1.r.abc.99999999999.!!",
        ] {
            assert_eq!(auth.verify(malformed), Err(AuthError::Malformed), "{malformed}");
        }
    }

    #[test]
    fn pages_of_the_servers_own_origin_or_an_allowed_one_may_connect() {
        let allowed = vec!["https://app.example.com".to_owned()];
        assert!(Auth::origin_allowed(None, Some("h:1"), &[]), "not a browser page");
        assert!(Auth::origin_allowed(Some("http://h:1"), Some("h:1"), &[]));
        assert!(!Auth::origin_allowed(Some("http://evil:1"), Some("h:1"), &[]));
        assert!(!Auth::origin_allowed(Some("null"), Some("h:1"), &[]));
        assert!(!Auth::origin_allowed(Some("http://h:1"), None, &[]));
        assert!(Auth::origin_allowed(Some("https://app.example.com"), Some("h:1"), &allowed));
        assert!(!Auth::origin_allowed(Some("https://app.example.com.evil"), Some("h:1"), &allowed));
        assert!(Auth::origin_allowed(Some("http://any"), Some("h:1"), &["*".to_owned()]));
    }

    #[test]
    fn open_mode_grants_everything_and_short_secrets_are_refused() {
        let open = Auth::new(vec![1; 32], true).unwrap();
        assert_eq!(open.check(None, None, Role::Admin), Ok(Role::Admin));
        assert!(Auth::new(vec![1; 31], false).is_err());
    }

    #[test]
    fn a_secret_is_generated_once_and_read_back() {
        let dir = std::env::temp_dir().join(format!("doc-server-secret-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = Auth::load_secret(None, &dir).unwrap();
        assert!(first.len() >= MIN_SECRET_BYTES);
        assert_eq!(Auth::load_secret(None, &dir).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.join(SECRET_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
