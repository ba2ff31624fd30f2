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

/// What the history view opens with.
#[derive(Debug, serde::Serialize)]
struct Outline {
    points: Vec<Point>,
    /// The version at the last point (`None` without any).
    last: Option<Version>,
}

/// The body at a point: its passages, and what changed since the previous point.
#[derive(Debug, serde::Serialize)]
struct Version {
    passages: Vec<Passage>,
    /// The range of the text (UTF-16 code units, as the page counts) that differs from the
    /// previous point's: common prefix and suffix left out.
    changed: [usize; 2],
}

/// A run of the text inserted by one person.
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

    /// The name an event gives `replica`'s writer, when known.
    pub(super) fn event_name(&self, replica: ReplicaId) -> Option<String> {
        if replica == self.doc.replica() {
            return Some("server".to_owned());
        }
        self.names.get(&replica).cloned()
    }

    fn name_of(&self, replica: ReplicaId) -> String {
        if replica == self.doc.replica() {
            return "the server (a rename or an HTTP API edit)".to_owned();
        }
        self.names.get(&replica).cloned().unwrap_or_else(|| format!("someone ({})", &replica.to_string()[..8]))
    }

    /// The history as JSON: the outline (`at` is `None`) or the body at point `at`.
    pub(super) fn history_json(&self, at: Option<usize>) -> Result<Vec<u8>, String> {
        if !self.doc.history_base().is_empty() {
            return Err("this document's history before its oldest kept version is not available".into());
        }
        let mut changes = self.doc.history();
        let json = match at {
            None => {
                // The view opens on the last point: its version comes with the outline, so
                // the first look is one request and one rebuild of the history.
                let points = self.outline(&changes);
                let last = match points.last() {
                    Some(last) => {
                        let previous = points.len().checked_sub(2).map_or(0, |i| points[i].upto);
                        changes.truncate(last.upto);
                        Some(self.version(changes, previous)?)
                    }
                    None => None,
                };
                serde_json::to_vec(&Outline { points, last })
            }
            Some(upto) if upto <= changes.len() => {
                // The point before it on the outline, to mark what changed since.
                let previous = point_positions(&changes).into_iter().filter(|&p| p < upto).max().unwrap_or(0);
                changes.truncate(upto);
                serde_json::to_vec(&self.version(changes, previous)?)
            }
            Some(upto) => return Err(format!("the history has {} changes, not {upto}", changes.len())),
        };
        json.map_err(|error| error.to_string())
    }

    fn outline(&self, changes: &[Change]) -> Vec<Point> {
        let mut previous = 0;
        point_positions(changes)
            .into_iter()
            .map(|upto| {
                let writers: BTreeSet<ReplicaId> = changes[previous..upto].iter().map(|c| c.replica).collect();
                previous = upto;
                let mut authors: Vec<String> = writers.into_iter().map(|r| self.name_of(r)).collect();
                authors.dedup();
                Point { upto, authors }
            })
            .collect()
    }

    /// The body after `changes`, and the range that differs from the body after the first
    /// `previous` of them: one replay.
    fn version(&self, mut changes: Vec<Change>, previous: usize) -> Result<Version, String> {
        let later = changes.split_off(previous);
        let mut past = Document::new(ReplicaId::random());
        replay(&mut past, changes)?;
        let before: Vec<char> = past.text(BODY).unwrap_or_default().chars().collect();
        replay(&mut past, later)?;
        let passages = self.passages(&past);
        let after: Vec<char> = passages.iter().flat_map(|p| p.text.chars()).collect();
        let prefix = before.iter().zip(&after).take_while(|(a, b)| a == b).count();
        let suffix =
            before[prefix..].iter().rev().zip(after[prefix..].iter().rev()).take_while(|(a, b)| a == b).count();
        let utf16 = |chars: &[char]| chars.iter().map(|c| c.len_utf16()).sum::<usize>();
        let from = utf16(&after[..prefix]);
        let to = from + utf16(&after[prefix..after.len() - suffix]);
        Ok(Version { passages, changed: [from, to] })
    }

    fn passages(&self, past: &Document) -> Vec<Passage> {
        let Some(rga) = past.rga(BODY) else { return Vec::new() };
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
        passages
    }
}

fn replay(past: &mut Document, changes: Vec<Change>) -> Result<(), String> {
    for change in changes {
        past.apply_change(change).map_err(|error| format!("replaying the history: {error}"))?;
    }
    Ok(())
}

/// Where the outline's points are: after these many changes. At writer changes (one person's
/// run of edits is one session) and evenly within long sessions, [`MAX_POINTS`] at most.
fn point_positions(changes: &[Change]) -> Vec<usize> {
    // Session boundaries: where the writer changes.
    let mut cuts: Vec<usize> = (1..changes.len()).filter(|&i| changes[i].replica != changes[i - 1].replica).collect();
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
    points.retain(|&upto| upto > 0);
    points
}
