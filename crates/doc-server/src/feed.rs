//! [`ChangeFeed`]: who hears about committed changes besides the document's connections: the
//! SSE subscribers of `GET /docs/{id}/events` and the webhooks.
//!
//! After a round's changes are durable, the document's actor hands the feed one
//! [`ChangeEvent`] (built only when someone listens: [`ChangeFeed::wants`]). The feed never
//! makes the actor wait: subscribers read a `broadcast` channel (a subscriber that falls behind
//! loses old events, which is harmless since every event carries the whole version), and the
//! webhooks take the event into their debounce table under a short lock.
//!
//! The subscriber table outlives document actors (a document may unload and load again while
//! someone listens); a document's entry is removed when its last subscriber leaves.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use crdt_core::{Change, Document, ReplicaId};
use tokio::sync::broadcast;

use crate::webhooks::Webhooks;
use crate::DocId;

/// How many events a slow SSE subscriber may fall behind before it skips to newer ones.
const SUBSCRIBER_BUFFER: usize = 64;
/// The most writers one event names.
pub(crate) const MAX_AUTHORS: usize = 32;
/// The most field names one event lists.
pub(crate) const MAX_FIELDS: usize = 64;

/// One round of committed changes of a document, as subscribers and webhooks see it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ChangeEvent {
    /// The document.
    pub doc: String,
    /// The document's version after the round: per replica, how many of its changes it holds.
    pub version: BTreeMap<String, u64>,
    /// How many changes the document holds in all (also the SSE event id, and what `?at=`
    /// counts).
    pub changes: u64,
    /// How many changes this event reports (the round's; a webhook call sums the rounds it
    /// covers).
    pub new_changes: u64,
    /// Who wrote them: replica ids, with the name their person gave when known.
    pub authors: Vec<Author>,
    /// The fields they touched.
    pub fields: Vec<String>,
    /// When the round was committed (milliseconds since the Unix epoch).
    pub at_ms: u64,
}

/// A writer named in a [`ChangeEvent`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Author {
    /// The replica id.
    pub replica: String,
    /// The name its person gave (`None` for an unknown one; "server" for HTTP edits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ChangeEvent {
    /// The event of `changes`, just committed to `doc`.
    pub fn new(
        id: &DocId,
        doc: &Document,
        changes: &[&Change],
        name_of: impl Fn(ReplicaId) -> Option<String>,
    ) -> ChangeEvent {
        let mut authors: Vec<Author> = Vec::new();
        let mut fields: Vec<String> = Vec::new();
        for change in changes {
            let replica = change.replica.to_string();
            if authors.len() < MAX_AUTHORS && !authors.iter().any(|a| a.replica == replica) {
                authors.push(Author { replica, name: name_of(change.replica) });
            }
            for op in change.ops.iter() {
                if fields.len() < MAX_FIELDS && !fields.iter().any(|f| f == op.field.as_str()) {
                    fields.push(op.field.to_string());
                }
            }
        }
        fields.sort();
        ChangeEvent {
            doc: id.to_string(),
            version: doc.version().iter().map(|(replica, seq)| (replica.to_string(), seq)).collect(),
            changes: doc.version().total(),
            new_changes: changes.len() as u64,
            authors,
            fields,
            at_ms: crate::storage::now_ms(),
        }
    }
}

/// The listeners of every document; see the module docs. Shared as `Arc<ChangeFeed>`.
pub struct ChangeFeed {
    subscribers: Mutex<HashMap<DocId, broadcast::Sender<Arc<ChangeEvent>>>>,
    webhooks: Arc<Webhooks>,
}

impl ChangeFeed {
    /// A feed with no subscriber that tells `webhooks`.
    pub fn new(webhooks: Arc<Webhooks>) -> ChangeFeed {
        ChangeFeed { subscribers: Mutex::default(), webhooks }
    }

    /// The webhooks it tells.
    pub fn webhooks(&self) -> &Arc<Webhooks> {
        &self.webhooks
    }

    /// Whether anyone listens to `id` (otherwise the actor builds no event).
    pub fn wants(&self, id: &DocId) -> bool {
        self.webhooks.wants(id) || self.lock().get(id).is_some_and(|sender| sender.receiver_count() > 0)
    }

    /// Tells every listener of `id` about `event`; never waits.
    pub fn publish(&self, id: &DocId, event: ChangeEvent) {
        let event = Arc::new(event);
        if let Some(sender) = self.lock().get(id) {
            // An error means nobody listens right now: nothing to do.
            let _ = sender.send(Arc::clone(&event));
        }
        self.webhooks.changed(id, &event);
    }

    /// A new subscription to `id`'s events; drop the [`Subscription`] to end it.
    pub fn subscribe(self: &Arc<Self>, id: &DocId) -> Subscription {
        let receiver =
            self.lock().entry(id.clone()).or_insert_with(|| broadcast::channel(SUBSCRIBER_BUFFER).0).subscribe();
        Subscription { feed: Arc::clone(self), id: id.clone(), receiver }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DocId, broadcast::Sender<Arc<ChangeEvent>>>> {
        // A panic while holding this lock leaves the map consistent (every change is one call).
        self.subscribers.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One subscriber's events; removes the document's entry when it is the last to go.
pub struct Subscription {
    feed: Arc<ChangeFeed>,
    id: DocId,
    /// The events.
    pub receiver: broadcast::Receiver<Arc<ChangeEvent>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut subscribers = self.feed.lock();
        // This receiver still counts until it is dropped, after this function.
        if subscribers.get(&self.id).is_some_and(|sender| sender.receiver_count() <= 1) {
            subscribers.remove(&self.id);
        }
    }
}
