//! Webhooks: HTTP calls to other programs after a document changes.
//!
//! A webhook is a URL and a secret. *Document* webhooks are registered over HTTP
//! (`POST /docs/{id}/webhooks`) and called for that document; *global* ones for every document,
//! registered with `POST /webhooks` or given as `--webhook URL` flags. Registered ones are kept
//! in the store (table `webhooks`), with a secret drawn at registration and answered once; a
//! flag's secret is derived from the server secret (`doc-server webhook-secret --url URL`
//! prints it), so it needs no storage and survives restarts.
//!
//! Calls are **debounced**: a document's webhooks are called at most once per
//! [`DEBOUNCE`], with the latest version and a summary of every round since the last call (the
//! first change after a quiet period is sent at once). They are **signed**: the body is JSON,
//! `X-DocServer-Timestamp` carries the Unix time in seconds and `X-DocServer-Signature` is
//! `v1=` and the hex HMAC-SHA256 of `timestamp + "." + body` under the webhook's secret
//! (PROTOCOL.md shows how to check it). A call that fails (no answer within
//! [`ATTEMPT_TIMEOUT`], or a status other than 2xx) is **retried** after 0.5 s, 1 s, 2 s, 4 s
//! and 8 s, then given up.
//!
//! **The actor never waits for a webhook:** it hands the feed an event (`feed.rs`), which only
//! takes the debounce lock; the dispatcher task ([`Webhooks::run`]) takes due documents and
//! spawns one delivery task per call (`webhooks/deliver.rs`), at most [`MAX_CONCURRENT`] sending
//! at once and at most [`MAX_QUEUED`] waiting or retrying, beyond which new calls are dropped
//! and counted. Only `http://` URLs are called (no TLS client): use it on a loopback or private
//! network, or behind a TLS-terminating proxy.
//!
//! # Invariants
//! - `pending` holds at most one entry per document, and every entry's webhooks are known.
//! - At most [`MAX_QUEUED`] deliveries exist at once (`queued`).

mod deliver;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::feed::{Author, ChangeEvent};
use crate::storage::{Store, StoredWebhook};
use crate::{Auth, DocId};
pub use deliver::{sign, Target};

/// The shortest time between two calls of one document's webhooks.
pub const DEBOUNCE: Duration = Duration::from_millis(500);
/// How long one attempt may take to connect and get the status line.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per call (the first and the retries).
pub const MAX_ATTEMPTS: u32 = 6;
/// The delay before the first retry; each next one doubles it.
pub const FIRST_RETRY: Duration = Duration::from_millis(500);
/// Calls being sent at once.
pub const MAX_CONCURRENT: usize = 16;
/// Calls waiting, being sent or waiting to retry; new ones beyond are dropped (and counted).
pub const MAX_QUEUED: usize = 1024;
/// Webhooks one document may have.
pub const MAX_PER_DOC: usize = 10;
/// Global webhooks registered over HTTP.
pub const MAX_GLOBAL: usize = 50;

/// The webhooks' counters (part of `Metrics`).
#[derive(Debug, Default)]
pub struct WebhookMetrics {
    /// Calls answered 2xx.
    pub delivered: AtomicU64,
    /// Attempts after the first.
    pub retries: AtomicU64,
    /// Attempts that failed (no answer in time, or not 2xx).
    pub attempt_failures: AtomicU64,
    /// Calls given up after every attempt failed.
    pub failed: AtomicU64,
    /// Calls dropped because [`MAX_QUEUED`] were already queued.
    pub dropped: AtomicU64,
    /// Edit requests applied over HTTP (`POST /docs/{id}/edits`).
    pub api_edits: AtomicU64,
}

impl WebhookMetrics {
    /// Appends the counters in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let counters = [
            ("doc_server_webhook_deliveries_total", "Webhook calls answered 2xx.", &self.delivered),
            ("doc_server_webhook_retries_total", "Webhook attempts after the first.", &self.retries),
            ("doc_server_webhook_attempt_failures_total", "Webhook attempts that failed.", &self.attempt_failures),
            ("doc_server_webhook_failures_total", "Webhook calls given up after every attempt.", &self.failed),
            ("doc_server_webhook_dropped_total", "Webhook calls dropped: too many queued.", &self.dropped),
            ("doc_server_api_edits_total", "Edit requests applied over the HTTP API.", &self.api_edits),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
    }
}

/// A webhook the dispatcher calls.
#[derive(Clone, Debug)]
struct Hook {
    id: String,
    target: Target,
    secret: Arc<str>,
    /// Given as a flag (not stored, cannot be removed over HTTP).
    from_flag: bool,
    created_ms: u64,
}

/// A webhook as listed (no secret).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Listed {
    /// Its id.
    pub id: String,
    /// Where it is called.
    pub url: String,
    /// Whether it comes from a `--webhook` flag.
    pub from_flag: bool,
    /// When it was registered (ms since the Unix epoch; 0 for a flag's).
    pub created_ms: u64,
}

impl From<&Hook> for Listed {
    fn from(hook: &Hook) -> Listed {
        Listed {
            id: hook.id.clone(),
            url: hook.target.url.clone(),
            from_flag: hook.from_flag,
            created_ms: hook.created_ms,
        }
    }
}

#[derive(Default)]
struct Hooks {
    global: Vec<Hook>,
    per_doc: HashMap<DocId, Vec<Hook>>,
}

/// What a document's next call reports: the rounds since its last call.
struct Pending {
    latest: Arc<ChangeEvent>,
    new_changes: u64,
    authors: BTreeSet<Author>,
    fields: BTreeSet<String>,
    due: Instant,
}

#[derive(Default)]
struct Debounce {
    pending: HashMap<DocId, Pending>,
    last_sent: HashMap<DocId, Instant>,
}

/// Every webhook and the calls due; see the module docs. Shared as `Arc<Webhooks>`.
pub struct Webhooks {
    hooks: Mutex<Hooks>,
    debounce: Mutex<Debounce>,
    wake: Notify,
    queued: AtomicUsize,
    sending: Semaphore,
    metrics: Arc<crate::metrics::Metrics>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every update under these locks is a single insert or removal: a panic cannot leave one
    // half done, so a poisoned lock is still consistent.
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A random id or secret: `bytes` random bytes in base64url.
fn random_text(bytes: usize) -> Result<String, String> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).map_err(|error| format!("no random source: {error}"))?;
    Ok(URL_SAFE_NO_PAD.encode(buffer))
}

/// The secret of the global webhook `url` given as a flag: derived from the server secret.
pub fn flag_secret(auth: &Auth, url: &str) -> String {
    format!("whsec_{}", auth.derive(&format!("webhook {url}")))
}

impl Webhooks {
    /// No webhooks yet; counts into `metrics`.
    pub fn new(metrics: Arc<crate::metrics::Metrics>) -> Webhooks {
        Webhooks {
            hooks: Mutex::default(),
            debounce: Mutex::default(),
            wake: Notify::new(),
            queued: AtomicUsize::new(0),
            sending: Semaphore::new(MAX_CONCURRENT),
            metrics,
        }
    }

    /// Sets the global webhooks of the `--webhook` flags (replacing earlier flag ones), their
    /// secrets derived with `auth`.
    pub fn set_flag_hooks(&self, auth: &Auth, urls: &[String]) -> Result<(), String> {
        let mut hooks = Vec::new();
        for (index, url) in urls.iter().enumerate() {
            let target = Target::parse(url).map_err(|error| format!("--webhook {url}: {error}"))?;
            let secret = flag_secret(auth, url).into();
            hooks.push(Hook { id: format!("flag-{index}"), target, secret, from_flag: true, created_ms: 0 });
        }
        let mut all = lock(&self.hooks);
        all.global.retain(|hook| !hook.from_flag);
        all.global.extend(hooks);
        Ok(())
    }

    /// Takes the webhooks the store holds (at start).
    pub fn load(&self, stored: Vec<StoredWebhook>) {
        let mut hooks = lock(&self.hooks);
        for webhook in stored {
            let Ok(target) = Target::parse(&webhook.url) else {
                tracing::warn!(id = webhook.id, url = webhook.url, "a stored webhook's URL is not usable: skipped");
                continue;
            };
            let hook = Hook {
                id: webhook.id,
                target,
                secret: webhook.secret.into(),
                from_flag: false,
                created_ms: webhook.created_ms,
            };
            match webhook.doc.as_deref().map(DocId::parse) {
                None => hooks.global.push(hook),
                Some(Ok(doc)) => hooks.per_doc.entry(doc).or_default().push(hook),
                Some(Err(_)) => tracing::warn!(id = hook.id, "a stored webhook names no valid document: skipped"),
            }
        }
    }

    /// A new webhook of `doc` (`None`: global) calling `url`, not yet stored or active: store
    /// it, then [`Webhooks::activate`] it. Refused for a bad URL or past the limits.
    pub fn prepare(&self, doc: Option<&DocId>, url: &str) -> Result<StoredWebhook, String> {
        Target::parse(url)?;
        let hooks = lock(&self.hooks);
        let (count, limit) = match doc {
            Some(doc) => (hooks.per_doc.get(doc).map_or(0, Vec::len), MAX_PER_DOC),
            None => (hooks.global.iter().filter(|hook| !hook.from_flag).count(), MAX_GLOBAL),
        };
        if count >= limit {
            return Err(format!("at most {limit} webhooks here: remove one first"));
        }
        Ok(StoredWebhook {
            id: format!("wh_{}", random_text(12)?),
            doc: doc.map(DocId::to_string),
            url: url.to_owned(),
            secret: format!("whsec_{}", random_text(32)?),
            created_ms: crate::storage::now_ms(),
        })
    }

    /// Starts calling a webhook made by [`Webhooks::prepare`] (and stored).
    pub fn activate(&self, webhook: &StoredWebhook) {
        self.load(vec![webhook.clone()]);
    }

    /// The webhooks of `doc` (`None`: the global ones), without secrets.
    pub fn list(&self, doc: Option<&DocId>) -> Vec<Listed> {
        let hooks = lock(&self.hooks);
        match doc {
            Some(doc) => hooks.per_doc.get(doc).map(|list| list.iter().map(Listed::from).collect()).unwrap_or_default(),
            None => hooks.global.iter().map(Listed::from).collect(),
        }
    }

    /// Stops calling webhook `id` of `doc` (`None`: global); whether it was there. Flag
    /// webhooks are not removed.
    pub fn remove(&self, doc: Option<&DocId>, id: &str) -> bool {
        let mut hooks = lock(&self.hooks);
        let list = match doc {
            Some(doc) => hooks.per_doc.get_mut(doc),
            None => Some(&mut hooks.global),
        };
        let Some(list) = list else { return false };
        let before = list.len();
        list.retain(|hook| hook.from_flag || hook.id != id);
        let removed = list.len() < before;
        if let Some(doc) = doc {
            if hooks.per_doc.get(doc).is_some_and(Vec::is_empty) {
                hooks.per_doc.remove(doc);
            }
        }
        removed
    }

    /// Whether a change of `doc` calls any webhook.
    pub fn wants(&self, doc: &DocId) -> bool {
        let hooks = lock(&self.hooks);
        !hooks.global.is_empty() || hooks.per_doc.contains_key(doc)
    }

    fn hooks_of(&self, doc: &DocId) -> Vec<Hook> {
        let hooks = lock(&self.hooks);
        hooks.global.iter().chain(hooks.per_doc.get(doc).into_iter().flatten()).cloned().collect()
    }

    /// A round of `doc` was committed: its webhooks are due (now, or [`DEBOUNCE`] after the
    /// last call). Never waits beyond the debounce lock.
    pub fn changed(&self, doc: &DocId, event: &Arc<ChangeEvent>) {
        if !self.wants(doc) {
            return;
        }
        let mut debounce = lock(&self.debounce);
        let now = Instant::now();
        let due = debounce.last_sent.get(doc).map_or(now, |at| (*at + DEBOUNCE).max(now));
        let pending = debounce.pending.entry(doc.clone()).or_insert_with(|| Pending {
            latest: Arc::clone(event),
            new_changes: 0,
            authors: BTreeSet::new(),
            fields: BTreeSet::new(),
            due,
        });
        pending.latest = Arc::clone(event);
        pending.new_changes += event.new_changes;
        // As bounded as one event: the first writers and fields seen since the last call.
        for author in &event.authors {
            if pending.authors.len() < crate::feed::MAX_AUTHORS {
                pending.authors.insert(author.clone());
            }
        }
        for field in &event.fields {
            if pending.fields.len() < crate::feed::MAX_FIELDS {
                pending.fields.insert(field.clone());
            }
        }
        drop(debounce);
        self.wake.notify_one();
    }

    /// The calls due now, taken out of the table; and when the next one is due.
    fn take_due(&self) -> (Vec<(DocId, Pending)>, Option<Instant>) {
        let mut debounce = lock(&self.debounce);
        let now = Instant::now();
        let due: Vec<DocId> =
            debounce.pending.iter().filter(|(_, pending)| pending.due <= now).map(|(doc, _)| doc.clone()).collect();
        let mut taken = Vec::with_capacity(due.len());
        for doc in due {
            if let Some(pending) = debounce.pending.remove(&doc) {
                debounce.last_sent.insert(doc.clone(), now);
                taken.push((doc, pending));
            }
        }
        // A document quiet for longer than the debounce is due at once next time anyway.
        debounce.last_sent.retain(|_, at| now.duration_since(*at) < DEBOUNCE);
        let next = debounce.pending.values().map(|pending| pending.due).min();
        (taken, next)
    }

    /// The dispatcher: calls the webhooks of due documents until `shutdown`. Deliveries run as
    /// tasks of `tracker` (a shutdown abandons their retries).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken, tracker: TaskTracker) {
        loop {
            let (due, next) = self.take_due();
            for (doc, pending) in due {
                self.dispatch(&doc, pending, &shutdown, &tracker);
            }
            let sleep = next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep_until(sleep) => {}
            }
        }
    }

    fn dispatch(self: &Arc<Self>, doc: &DocId, pending: Pending, shutdown: &CancellationToken, tracker: &TaskTracker) {
        let mut summary = (*pending.latest).clone();
        summary.new_changes = pending.new_changes;
        summary.authors = pending.authors.into_iter().collect();
        summary.fields = pending.fields.into_iter().collect();
        for hook in self.hooks_of(doc) {
            if self.queued.fetch_add(1, Ordering::Relaxed) >= MAX_QUEUED {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                crate::metrics::Metrics::inc(&self.metrics.http_api.dropped);
                tracing::warn!(doc_id = %doc, webhook = hook.id, "webhook call dropped: too many queued");
                continue;
            }
            let body = deliver::body(&hook.id, &summary);
            let (this, shutdown) = (Arc::clone(self), shutdown.clone());
            let doc = doc.clone();
            tracker.spawn(async move {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = this.deliver(&doc, &hook, body) => {}
                }
                this.queued.fetch_sub(1, Ordering::Relaxed);
            });
        }
    }
}

impl crate::AppState {
    /// Loads the stored webhooks and starts their dispatcher (`lib::run` calls it).
    pub async fn start_webhooks(&self) -> Result<(), crate::ServerError> {
        let store: Arc<dyn Store> = Arc::clone(&self.store);
        let stored = tokio::task::spawn_blocking(move || store.webhooks()).await??;
        let webhooks = Arc::clone(self.feed.webhooks());
        webhooks.load(stored);
        self.tracker.spawn(webhooks.run(self.shutdown.clone(), self.tracker.clone()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(doc: &DocId, changes: u64, field: &str) -> Arc<ChangeEvent> {
        Arc::new(ChangeEvent {
            doc: doc.to_string(),
            version: Default::default(),
            changes,
            new_changes: 1,
            authors: vec![Author { replica: format!("r{changes}"), name: None }],
            fields: vec![field.to_owned()],
            at_ms: 0,
        })
    }

    #[tokio::test]
    async fn calls_of_one_document_are_debounced_and_summed() {
        let webhooks = Webhooks::new(Arc::default());
        let (doc, quiet) = (DocId::parse("d").unwrap(), DocId::parse("q").unwrap());
        webhooks.changed(&doc, &event(&doc, 1, "body"));
        assert!(webhooks.take_due().0.is_empty(), "no webhook: nothing is kept");
        let hook = webhooks.prepare(Some(&doc), "http://127.0.0.1:9/h").unwrap();
        webhooks.activate(&hook);
        assert!(webhooks.wants(&doc) && !webhooks.wants(&quiet));

        webhooks.changed(&doc, &event(&doc, 1, "body"));
        webhooks.changed(&doc, &event(&doc, 2, "title"));
        let (due, next) = webhooks.take_due();
        assert_eq!(due.len(), 1, "the first change after a quiet period is due at once");
        let pending = &due[0].1;
        assert_eq!((pending.latest.changes, pending.new_changes), (2, 2));
        assert_eq!(pending.fields.iter().collect::<Vec<_>>(), ["body", "title"]);
        assert_eq!(pending.authors.len(), 2);
        assert_eq!(next, None);

        // The next change waits for the rest of the debounce.
        webhooks.changed(&doc, &event(&doc, 3, "body"));
        let (due, next) = webhooks.take_due();
        assert!(due.is_empty());
        let wait = next.expect("due later") - Instant::now();
        assert!(wait > DEBOUNCE - Duration::from_millis(100) && wait <= DEBOUNCE, "{wait:?}");
    }

    #[test]
    fn registrations_are_limited_and_flag_hooks_stay() {
        let webhooks = Webhooks::new(Arc::default());
        let doc = DocId::parse("d").unwrap();
        for _ in 0..MAX_PER_DOC {
            let hook = webhooks.prepare(Some(&doc), "http://127.0.0.1:9/h").unwrap();
            assert!(hook.secret.starts_with("whsec_") && hook.secret.len() > 40);
            webhooks.activate(&hook);
        }
        assert!(webhooks.prepare(Some(&doc), "http://127.0.0.1:9/h").unwrap_err().contains("at most 10"));
        assert!(webhooks.prepare(None, "https://a/").is_err());
        let auth = Auth::ephemeral(false);
        webhooks.set_flag_hooks(&auth, &["http://127.0.0.1:9/all".to_owned()]).unwrap();
        assert_eq!(webhooks.list(None).len(), 1);
        assert!(!webhooks.remove(None, "flag-0"), "a flag's webhook is not removed over HTTP");
        let first = webhooks.list(Some(&doc))[0].id.clone();
        assert!(webhooks.remove(Some(&doc), &first));
        assert_eq!(webhooks.list(Some(&doc)).len(), MAX_PER_DOC - 1);
        assert_ne!(flag_secret(&auth, "http://a/"), flag_secret(&auth, "http://b/"));
        assert_eq!(flag_secret(&auth, "http://a/"), flag_secret(&auth, "http://a/"));
    }
}
