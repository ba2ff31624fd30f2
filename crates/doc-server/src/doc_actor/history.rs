//! The version history view's data (`GET /docs/{id}/history`): the document's past, read from
//! its compact history, as *points* a slider moves over, and the body text at one point with
//! who wrote each passage.
//!
//! A point is "after the first `upto` changes" of the history's order (the order the server
//! applied them, a causal order), placed where the writer changes (one person's run of edits
//! is one editing session) and, within long sessions, evenly, [`MAX_POINTS`] at most. The text
//! at a point is the body of a fresh document that applied those changes; its passages are
//! runs of characters inserted by one replica, named by the name its person last gave.
//!
//! Names are recorded per replica when a writing connection joins (`Store::set_names`, in the
//! background: a name is for people, not part of the acknowledged history).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crdt_core::{Change, Document, ReplicaId};

use super::DocActor;
use crate::metrics::Metrics;

/// The most points the outline has.
const MAX_POINTS: usize = 200;
/// The field the editor keeps its text in (`wasm_client::session::BODY`).
const BODY: &str = "body";

/// The outline: one entry per point.
#[derive(Debug, serde::Serialize)]
struct Point {
    /// The point is after this many changes of the history.
    upto: usize,
    /// Who wrote the changes since the previous point.
    authors: Vec<String>,
}

/// The text at a point, as passages.
#[derive(Debug, serde::Serialize)]
struct Passage {
    /// Who inserted these characters.
    author: String,
    text: String,
}

impl DocActor {
    /// Records the name a writing connection gave for its replica, if it is new or changed.
    pub(super) fn note_name(&mut self, replica: ReplicaId, name: &str) {
        if self.names.get(&replica).map(String::as_str) == Some(name) {
            return;
        }
        self.names.insert(replica, name.to_owned());
        let (store, id, entry) = (Arc::clone(&self.ctx.store), self.id.clone(), vec![(replica, name.to_owned())]);
        let metrics = Arc::clone(&self.ctx.metrics);
        self.ctx.tracker.spawn_blocking(move || {
            if let Err(error) = store.set_names(&id, &entry) {
                Metrics::inc(&metrics.storage_errors);
                tracing::warn!(doc_id = %id, %error, "could not record a name for the history");
            }
        });
    }

    fn name_of(&self, replica: ReplicaId) -> String {
        if replica == self.doc.replica() {
            return "the server (a rename from the list)".to_owned();
        }
        self.names.get(&replica).cloned().unwrap_or_else(|| format!("someone ({})", &replica.to_string()[..8]))
    }

    /// The history as JSON: the outline (`at` is `None`) or the body at point `at`.
    pub(super) fn history_json(&self, at: Option<usize>) -> Result<Vec<u8>, String> {
        if !self.doc.history_base().is_empty() {
            return Err("this document's history before its oldest kept version is not available".into());
        }
        let changes = self.doc.history();
        let json = match at {
            None => serde_json::to_vec(&self.outline(&changes)),
            Some(upto) if upto <= changes.len() => serde_json::to_vec(&self.passages(&changes[..upto])?),
            Some(upto) => return Err(format!("the history has {} changes, not {upto}", changes.len())),
        };
        json.map_err(|error| error.to_string())
    }

    fn outline(&self, changes: &[Change]) -> Vec<Point> {
        // Session boundaries: where the writer changes.
        let mut cuts: Vec<usize> =
            (1..changes.len()).filter(|&i| changes[i].replica != changes[i - 1].replica).collect();
        cuts.push(changes.len());
        // Long sessions get points inside them too, so the slider moves in steps of at most
        // `step` changes; then, if there are too many, keep an even sample (and the last).
        let step = changes.len().div_ceil(MAX_POINTS).max(1);
        let mut points = Vec::new();
        let mut previous = 0;
        for cut in cuts {
            let mut at = previous + step;
            while at < cut {
                points.push(at);
                at += step;
            }
            points.push(cut);
            previous = cut;
        }
        if points.len() > MAX_POINTS {
            let stride = points.len().div_ceil(MAX_POINTS);
            let last = points.last().copied();
            points = points.into_iter().step_by(stride).collect();
            if points.last().copied() != last {
                points.extend(last);
            }
        }
        let mut previous = 0;
        points
            .into_iter()
            .filter(|&upto| upto > 0)
            .map(|upto| {
                let writers: BTreeSet<ReplicaId> = changes[previous..upto].iter().map(|c| c.replica).collect();
                previous = upto;
                let mut authors: Vec<String> = writers.into_iter().map(|r| self.name_of(r)).collect();
                authors.dedup();
                Point { upto, authors }
            })
            .collect()
    }

    fn passages(&self, changes: &[Change]) -> Result<Vec<Passage>, String> {
        let mut past = Document::new(ReplicaId::random());
        for change in changes {
            past.apply_change(change.clone()).map_err(|error| format!("replaying the history: {error}"))?;
        }
        let Some(rga) = past.rga(BODY) else { return Ok(Vec::new()) };
        let text: Vec<char> = rga.value().chars().collect();
        let mut names: HashMap<ReplicaId, String> = HashMap::new();
        let mut passages: Vec<Passage> = Vec::new();
        for (pos, ch) in text.iter().enumerate() {
            // The character at `pos` is the one an anchor at `pos + 1` stands after.
            let replica = rga.anchor_at(pos + 1).after.map(|id| id.replica);
            let author = match replica {
                Some(replica) => names.entry(replica).or_insert_with(|| self.name_of(replica)).clone(),
                None => String::new(),
            };
            match passages.last_mut() {
                Some(last) if last.author == author => last.text.push(*ch),
                _ => passages.push(Passage { author, text: ch.to_string() }),
            }
        }
        Ok(passages)
    }
}
