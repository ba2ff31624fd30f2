//! One round of the actor: applying batches (all-or-nothing), then the group commit, the
//! broadcasts, the acknowledgements and the welcomes; see the `doc_actor` module docs.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use axum::body::Bytes;
use crdt_core::protocol::{self, reject, AckStatus, ServerMsg};
use crdt_core::{ApplyOutcome, Change, Document, FieldKind, FieldOp, Op, ReplicaId, RgaOp};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::peers::frame;
use super::pipeline::{AfterCommit, Unsettled};
use super::{ConnId, DocActor, JoinRequest};
use crate::limits::DocLimits;
use crate::metrics::Metrics;
use crate::storage::AuthorHash;
use crate::ServerError;

/// The work gathered by one round.
#[derive(Default)]
pub(super) struct Round {
    pub commands: usize,
    /// Changes applied so far: a round ends once it holds [`super::MAX_ROUND_CHANGES`].
    pub changes: usize,
    /// Batches with at least one newly applied change, in apply order.
    pub applied: Vec<AppliedBatch>,
    pub acks: Vec<PendingAck>,
    pub joins: Vec<JoinRequest>,
    pub values: Vec<oneshot::Sender<Vec<u8>>>,
    /// The server's own edits of this round (and whether each changed anything), answered
    /// once durable.
    pub edits: Vec<(oneshot::Sender<Result<super::Committed, super::EditFailure>>, bool)>,
    /// Reads to run once the round is durable.
    pub reads: Vec<super::DeferredRead>,
    /// Set when a rejected batch could not be undone: the round must not be acknowledged.
    pub failure: Option<ServerError>,
    /// Replicas first authored in this round, with their owners: stored before any ack.
    pub registrations: Vec<(ReplicaId, AuthorHash)>,
    /// The lease keeper's news this round: `Some(true)` lost, `Some(false)` wanted elsewhere.
    pub lease: Option<bool>,
}

/// The newly applied changes of one batch (duplicates left out).
pub(super) struct AppliedBatch {
    pub conn: ConnId,
    pub changes: Vec<Change>,
}

/// An acknowledgement to send once the round is durable.
pub(super) struct PendingAck {
    pub conn: ConnId,
    pub seq: u64,
    pub status: AckStatus,
}

impl Round {
    /// Every change applied in this round so far, in order.
    fn all_changes(&self) -> impl Iterator<Item = &Change> {
        self.applied.iter().flat_map(|batch| &batch.changes)
    }
}

/// Checks that every change of a batch is well formed and either a duplicate or ready, taking
/// the earlier changes of the batch into account. Nothing is changed.
///
/// A duplicate must be the very change the document holds (or an earlier change of the batch
/// holds): the same `(replica, seq)` with other content is a replica id used by two editors,
/// and acknowledging it as applied would drop it silently.
pub(super) fn check_batch(doc: &Document, changes: &[Change], limits: &DocLimits) -> Result<(), (u16, String)> {
    let mut version = doc.version().clone();
    for (index, change) in changes.iter().enumerate() {
        change.validate().map_err(|error| (reject::INVALID, format!("change {index} is invalid: {error}")))?;
        let seen = version.get(change.replica);
        if change.seq <= seen {
            let same = if change.seq <= doc.version().get(change.replica) {
                // `None`: from before the history's base, which cannot be compared.
                doc.change(change.id()).is_none_or(|held| held == *change)
            } else {
                changes[..index].iter().rev().find(|c| c.id() == change.id()).is_none_or(|held| held == change)
            };
            if !same {
                return Err((
                    reject::CONFLICT,
                    format!(
                        "change {index} is #{} of replica {} but differs from the change the server \
                         holds under that id: two editors used one replica id; edit as a new replica",
                        change.seq, change.replica
                    ),
                ));
            }
            continue;
        }
        if change.seq != seen + 1 {
            return Err((
                reject::NOT_READY,
                format!(
                    "change {index} is #{} of replica {} but the server has only {seen} of its \
                     changes: send every change after the version in Welcome, in order",
                    change.seq, change.replica
                ),
            ));
        }
        if !change.deps_seen(&version) {
            return Err((
                reject::NOT_READY,
                format!(
                    "change {index} depends on changes the server does not have: send every change \
                     after the version in Welcome, in causal order"
                ),
            ));
        }
        version.set(change.replica, change.seq);
    }
    doc.check_register_stamps(changes).map_err(|index| {
        (
            reject::DOES_NOT_FIT,
            format!(
                "change {index} writes a register with a stamp ahead of every write before it: it \
                 would win against every later write and pin the register"
            ),
        )
    })?;
    // Every operation against the state the earlier changes leave, before any is applied: a
    // batch refused here costs a check, not a reload of the document.
    doc.check_changes(changes).map_err(|(index, error)| {
        (reject::DOES_NOT_FIT, format!("change {index} does not fit the document: {error}"))
    })?;
    check_limits(doc, changes, limits)
}

/// Checks that the new changes of a batch (ready, in order) keep the document within `limits`:
/// no new field beyond `max_fields` or with a name above `max_field_name_bytes`, no text
/// beyond `max_text_chars`. Fields that exist already are never refused.
fn check_limits(doc: &Document, changes: &[Change], limits: &DocLimits) -> Result<(), (u16, String)> {
    let mut version = doc.version().clone();
    let mut new_fields: HashSet<(&str, FieldKind)> = HashSet::new();
    let mut chars = doc.text_chars();
    for (index, change) in changes.iter().enumerate() {
        if change.seq <= version.get(change.replica) {
            continue; // a duplicate adds nothing
        }
        version.set(change.replica, change.seq);
        for FieldOp { field, op } in &change.ops {
            let kind = op.kind();
            if !doc.has_field(field, kind) && new_fields.insert((field.as_str(), kind)) {
                if field.len() > limits.max_field_name_bytes {
                    return Err((
                        reject::FIELD_NAME_TOO_LONG,
                        format!(
                            "change {index} creates a field whose name is {} bytes long: the limit is {}",
                            field.len(),
                            limits.max_field_name_bytes
                        ),
                    ));
                }
                if doc.field_count() + new_fields.len() > limits.max_fields {
                    return Err((
                        reject::TOO_MANY_FIELDS,
                        format!(
                            "change {index} creates a field beyond the document's limit of {} fields",
                            limits.max_fields
                        ),
                    ));
                }
            }
            if let Op::Text(RgaOp::Insert { text, .. }) = op {
                chars += text.chars().count() as u64;
                if chars > limits.max_text_chars {
                    return Err((
                        reject::TEXT_TOO_LARGE,
                        format!(
                            "change {index} inserts text beyond the document's limit of {} characters \
                             (deleted ones count: the server keeps them)",
                            limits.max_text_chars
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

impl DocActor {
    pub(super) fn limits(&self) -> DocLimits {
        DocLimits::from_config(&self.ctx.config)
    }

    /// Applies one batch from `conn` whole or not at all, and queues its acknowledgement.
    ///
    /// A `vouched` batch is a give-back whose relay tag checked out (`relay.rs`): the server
    /// checked its authors when it first took it, so that is not repeated (the giver need not
    /// own its replicas, nor be a writer).
    pub(super) async fn apply_batch(
        &mut self,
        conn: ConnId,
        seq: u64,
        changes: Vec<Change>,
        vouched: bool,
        round: &mut Round,
    ) {
        let Some(writable) = self.peers.get(&conn).map(|entry| entry.writable) else {
            // Kicked or never joined: its client resends after reconnecting.
            return;
        };
        if !writable && !vouched {
            let reason = "this connection's link is view-only: nothing it sends is applied".to_owned();
            tracing::info!(conn = conn.0, seq, "batch from a view-only connection rejected");
            Metrics::inc(&self.ctx.metrics.read_only_rejections);
            round.acks.push(PendingAck { conn, seq, status: AckStatus::Rejected { code: reject::READ_ONLY, reason } });
            return;
        }
        let started = Instant::now();
        // Ownership first: a change authored as someone else's replica is refused as such,
        // whatever else is wrong with it.
        let authors = if vouched { Ok(Vec::new()) } else { self.check_authors(conn, &changes, round) };
        let checked =
            authors.and_then(|new_authors| check_batch(&self.doc, &changes, &self.limits()).map(|()| new_authors));
        let status = match checked {
            Err((code, reason)) => AckStatus::Rejected { code, reason },
            Ok(new_authors) => {
                let status = self.apply_checked(conn, changes, round).await;
                if status == AckStatus::Applied {
                    self.register(conn, new_authors, round);
                }
                status
            }
        };
        self.ctx.metrics.apply_latency.observe(started.elapsed());
        if let AckStatus::Rejected { code, reason } = &status {
            if *code == reject::NOT_OWNER {
                Metrics::inc(&self.ctx.metrics.ownership_rejections);
            }
            if [reject::TOO_MANY_FIELDS, reject::FIELD_NAME_TOO_LONG, reject::TEXT_TOO_LARGE].contains(code) {
                Metrics::inc(&self.ctx.metrics.limit_rejections);
            }
            tracing::info!(conn = conn.0, seq, code, %reason, "batch rejected");
        }
        round.acks.push(PendingAck { conn, seq, status });
    }

    async fn apply_checked(&mut self, conn: ConnId, changes: Vec<Change>, round: &mut Round) -> AckStatus {
        let mut applied = Vec::new();
        for (index, change) in changes.into_iter().enumerate() {
            let failure = match self.doc.apply_change(change.clone()) {
                Ok(ApplyOutcome::Applied { .. }) => {
                    applied.push(change);
                    continue;
                }
                Ok(ApplyOutcome::Duplicate) => continue,
                // `check_batch` accepted only ready changes; buffering one would be a bug.
                Ok(ApplyOutcome::Buffered) => "change would have to wait for its dependencies".to_owned(),
                Err(error) => error.to_string(),
            };
            let reason = format!("change {index} does not fit the document: {failure}");
            // `check_batch` checked every change against the state the earlier ones leave, so
            // this is a bug in a check; undoing the batch's applied part costs a reload.
            tracing::error!(%reason, "a checked batch did not apply: reloading the document");
            debug_assert!(false, "a checked batch did not apply: {reason}");
            if !applied.is_empty() || self.doc.pending_count() > 0 {
                Metrics::inc(&self.ctx.metrics.document_rebuilds);
                let others: Vec<Change> = round.all_changes().cloned().collect();
                // The store must hold every earlier round first.
                let rebuilt = match self.drain().await {
                    Ok(()) => self.rebuild(others).await,
                    Err(error) => Err(error),
                };
                if let Err(error) = rebuilt {
                    // The document cannot be trusted any more: the round fails as a whole.
                    round.failure.get_or_insert(error);
                }
            }
            return AckStatus::Rejected { code: reject::DOES_NOT_FIT, reason };
        }
        if !applied.is_empty() {
            round.changes += applied.len();
            round.applied.push(AppliedBatch { conn, changes: applied });
        }
        AckStatus::Applied
    }

    /// Ends the round: relays what it applied to the other connections at once, then hands
    /// its changes to the commit pipeline with what must wait for them (acks, edit answers,
    /// feed events; joins, values and reads wait for a drained pipeline): `pipeline.rs`. An
    /// error means nothing of the round was acknowledged and the actor must stop.
    pub(super) async fn finish(&mut self, mut round: Round) -> Result<(), ServerError> {
        if let Some(error) = round.failure.take() {
            return Err(error);
        }
        if !round.registrations.is_empty() {
            // Before the relay and the log: a relayed change may come back on its tag alone
            // (`relay.rs`), so its author must be on record first. A crash in between leaves
            // an owner without changes (harmless), never changes whose replica anyone could
            // claim.
            let registrations = std::mem::take(&mut round.registrations);
            let store = Arc::clone(&self.ctx.store);
            let id = self.id.clone();
            tokio::task::spawn_blocking(move || store.register_authors(&id, &registrations)).await??;
        }
        let mut after = AfterCommit::default();
        let mut changes = Vec::new();
        if !round.applied.is_empty() {
            if self.ctx.feed.wants(&self.id) {
                let all: Vec<&Change> = round.all_changes().collect();
                let event =
                    crate::feed::ChangeEvent::new(&self.id, &self.doc, &all, |replica| self.event_name(replica));
                after.events.push(event);
            }
            // Every connection's next ack names the replicas this round moved.
            let moved: BTreeSet<ReplicaId> = round.all_changes().map(|change| change.replica).collect();
            for entry in self.peers.values_mut() {
                entry.untold.extend(moved.iter().copied());
            }
            // Relayed now, durable later. Each relay is one frame shared by every peer.
            for (conn, batch) in coalesce_batches(std::mem::take(&mut round.applied)) {
                let list = protocol::change_list_bytes(&batch);
                let tag = self.ctx.relay.tag(&self.id, &list);
                self.pipeline.relay_number += 1;
                let number = self.pipeline.relay_number;
                let message = Bytes::from(protocol::relay_frame(&list, &tag, number, self.pipeline.durable_relay));
                self.broadcast(&message, Some(conn));
                after.relayed = number;
                changes.extend(batch);
            }
        }
        for (reply, changed) in std::mem::take(&mut round.edits) {
            after.edits.push((reply, super::Committed { version: self.doc.version().clone(), changed }));
        }
        if !round.acks.is_empty() {
            // An ack tells the version and hash at the end of its round; it goes out once the
            // round is durable, maybe after relays of later rounds (which a client then has).
            let hash = self.doc.state_hash();
            for ack in coalesce_acks(std::mem::take(&mut round.acks)) {
                let counter = match ack.status {
                    AckStatus::Applied => &self.ctx.metrics.batches_applied,
                    AckStatus::Rejected { .. } => &self.ctx.metrics.batches_rejected,
                };
                Metrics::inc(counter);
                let Some(entry) = self.peers.get_mut(&ack.conn) else { continue };
                let version =
                    std::mem::take(&mut entry.untold).into_iter().map(|r| (r, self.doc.version().get(r))).collect();
                let message = frame(&ServerMsg::Ack { seq: ack.seq, status: ack.status, version, hash });
                after.acks.push((ack.conn, message));
            }
        }
        self.settle_dropped();
        let waiting = &mut self.pipeline.waiting;
        waiting.joins.append(&mut round.joins);
        waiting.values.append(&mut round.values);
        waiting.reads.append(&mut round.reads);
        self.settle(Unsettled { changes, after });
        Ok(())
    }
}

/// The round's applied batches as broadcasts: consecutive batches of one connection become one
/// `Changes` message, so a client that sends a keystroke per message does not cost its peers a
/// frame per keystroke. Only consecutive ones: the round's order is a causal order, and a
/// batch may depend on one of another connection just before it (a relayed change).
fn coalesce_batches(batches: Vec<AppliedBatch>) -> Vec<(ConnId, Vec<Change>)> {
    let mut merged: Vec<(ConnId, Vec<Change>)> = Vec::new();
    for batch in batches {
        match merged.last_mut() {
            Some((conn, changes)) if *conn == batch.conn => changes.extend(batch.changes),
            _ => merged.push((batch.conn, batch.changes)),
        }
    }
    merged
}

/// The acknowledgements to send: an `Applied` ack that the same connection's next ack of the
/// round would also acknowledge is left out (PROTOCOL.md: an `Applied` ack of batch `seq`
/// acknowledges every earlier batch of the connection), so a flood of small batches is
/// answered by one ack per round, not one per batch. A `Rejected` ack is always sent, and so is
/// the `Applied` one before it.
fn coalesce_acks(acks: Vec<PendingAck>) -> Vec<PendingAck> {
    let mut applied_next: BTreeSet<ConnId> = BTreeSet::new();
    let mut kept: Vec<PendingAck> = Vec::with_capacity(acks.len());
    for ack in acks.into_iter().rev() {
        let applied = matches!(ack.status, AckStatus::Applied);
        let covered = applied && applied_next.contains(&ack.conn);
        if applied {
            applied_next.insert(ack.conn);
        } else {
            applied_next.remove(&ack.conn);
        }
        if !covered {
            kept.push(ack);
        }
    }
    kept.reverse();
    kept
}

/// `Document::value()` as JSON bytes (for `GET /docs/{id}`).
pub(super) fn value_json(doc: &crdt_core::Document) -> Vec<u8> {
    serde_json::to_vec(&doc.value()).unwrap_or_else(|error| {
        tracing::error!(%error, "document value is not serializable");
        b"null".to_vec()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crdt_core::{Document, ReplicaId};

    const LIMITS: DocLimits = DocLimits { max_fields: 4, max_field_name_bytes: 8, max_text_chars: 10 };

    fn check(doc: &Document, changes: &[Change]) -> Result<(), (u16, String)> {
        check_batch(doc, changes, &LIMITS)
    }

    #[test]
    fn a_batch_whose_later_change_does_not_fit_is_refused_before_anything_applies() {
        let mut alice = Document::new(ReplicaId::from_u128(1));
        let typed = alice.insert_text("t", 0, "ab").unwrap();
        let mut spoiled = alice.delete_text("t", 0, 1).unwrap().unwrap();
        let crdt_core::Op::Text(RgaOp::Delete { ranges }) = &mut spoiled.ops[0].op else { panic!("a delete") };
        ranges[0].start.counter += 100;
        let server = Document::new(ReplicaId::from_u128(9));
        let (code, reason) = check(&server, &[typed.clone(), spoiled]).unwrap_err();
        assert_eq!(code, reject::DOES_NOT_FIT);
        assert!(reason.starts_with("change 1 does not fit"), "{reason}");
        assert_eq!(check(&server, &[typed]), Ok(()));
    }

    #[test]
    fn batches_beyond_a_documents_limits_are_refused_with_their_codes() {
        let mut alice = Document::new(ReplicaId::from_u128(1));
        let mut server = Document::new(ReplicaId::from_u128(9));
        let mut full: Vec<Change> = ["a", "b", "c"].iter().map(|name| alice.increment(name, 1)).collect();
        full.push(alice.insert_text("body", 0, "0123456789").unwrap());
        assert_eq!(check(&server, &full), Ok(()), "four fields and ten characters: at the limits");
        let mut bob = Document::new(ReplicaId::from_u128(2));
        for change in &full {
            server.apply_change(change.clone()).unwrap();
            bob.apply_change(change.clone()).unwrap();
        }
        // Each of bob's batches below is his first change, checked against the full document.
        let first = |edit: &dyn Fn(&mut Document) -> Change| edit(&mut bob.clone());
        assert_eq!(check(&server, &[first(&|doc| doc.increment("a", 1))]), Ok(()), "existing fields take more");
        let fifth = first(&|doc| doc.set_register("a", "x".into()));
        let (code, reason) = check(&server, &[fifth]).unwrap_err();
        assert_eq!(code, reject::TOO_MANY_FIELDS, "the same name as another kind is another field: {reason}");
        let retyped = first(&|doc| doc.replace_text("body", 0, 5, "x").unwrap().unwrap());
        let (code, reason) = check(&server, &[retyped]).unwrap_err();
        assert_eq!(code, reject::TEXT_TOO_LARGE, "deleted characters still count: {reason}");
        // A long name is refused for a new field, whatever the count.
        let empty = Document::new(ReplicaId::from_u128(9));
        let long = Document::new(ReplicaId::from_u128(3)).increment("123456789", 1);
        let (code, reason) = check(&empty, &[long]).unwrap_err();
        assert_eq!(code, reject::FIELD_NAME_TOO_LONG);
        assert!(reason.contains("9 bytes"), "{reason}");
    }

    #[test]
    fn check_batch_accepts_duplicates_and_ready_chains() {
        let mut alice = Document::new(ReplicaId::from_u128(1));
        let first = alice.insert_text("t", 0, "a").unwrap();
        let second = alice.insert_text("t", 1, "b").unwrap();
        let server = Document::new(ReplicaId::from_u128(9));
        let batch = [first.clone(), first.clone(), second.clone()];
        assert_eq!(check(&server, &batch), Ok(()));
        assert!(check(&server, &[second]).is_err(), "skips #1");
    }

    #[test]
    fn check_batch_refuses_a_register_write_stamped_ahead() {
        let mallory = ReplicaId::from_u128(66);
        let mut server = Document::new(ReplicaId::from_u128(9));
        let mut alice = Document::new(ReplicaId::from_u128(1));
        let honest = alice.set_register("title", "ours".into());
        assert_eq!(check(&server, std::slice::from_ref(&honest)), Ok(()));
        server.apply_change(honest).unwrap();
        let write = |time| Change {
            replica: mallory,
            seq: 1,
            deps: Vec::new(),
            ops: crdt_core::InlineVec::one(crdt_core::FieldOp {
                field: "title".into(),
                op: crdt_core::Op::Register(crdt_core::LwwOp {
                    stamp: crdt_core::Lamport { time, replica: mallory },
                    value: "pinned".into(),
                }),
            }),
        };
        let refused = check(&server, &[write(u64::MAX)]).unwrap_err();
        assert_eq!(refused.0, reject::DOES_NOT_FIT, "{refused:?}");
        assert_eq!(check(&server, &[write(2)]), Ok(()), "one above the stamp held");
    }

    #[test]
    fn acks_of_a_run_of_applied_batches_become_the_last_one() {
        let ack = |conn, seq, applied: bool| PendingAck {
            conn: ConnId(conn),
            seq,
            status: if applied { AckStatus::Applied } else { AckStatus::Rejected { code: 1, reason: "no".into() } },
        };
        let acks = vec![
            ack(1, 1, true),
            ack(2, 1, true),
            ack(1, 2, true),
            ack(1, 3, true),
            ack(1, 4, false),
            ack(2, 2, true),
            ack(1, 5, true),
        ];
        let kept: Vec<(u64, u64)> = coalesce_acks(acks).iter().map(|a| (a.conn.0, a.seq)).collect();
        assert_eq!(kept, [(1, 3), (1, 4), (2, 2), (1, 5)]);
    }

    #[test]
    fn only_consecutive_batches_of_one_connection_share_a_broadcast() {
        let mut alice = Document::new(ReplicaId::from_u128(1));
        let mut change = |text: &str| alice.insert_text("t", 0, text).unwrap();
        let batch = |conn, changes| AppliedBatch { conn: ConnId(conn), changes };
        let batches = vec![
            batch(1, vec![change("a")]),
            batch(1, vec![change("b"), change("c")]),
            batch(2, vec![change("d")]),
            batch(1, vec![change("e")]),
        ];
        let merged: Vec<(u64, usize)> =
            coalesce_batches(batches).iter().map(|(conn, changes)| (conn.0, changes.len())).collect();
        assert_eq!(merged, [(1, 3), (2, 1), (1, 1)]);
    }

    #[test]
    fn a_reused_id_with_other_content_is_refused_not_acknowledged() {
        let mut alice = Document::new(ReplicaId::from_u128(1));
        let mut impostor = Document::new(ReplicaId::from_u128(1));
        let genuine = alice.insert_text("t", 0, "a").unwrap();
        let forged = impostor.insert_text("t", 0, "z").unwrap();
        assert_eq!(genuine.id(), forged.id());
        let mut server = Document::new(ReplicaId::from_u128(9));
        assert_eq!(check(&server, std::slice::from_ref(&genuine)), Ok(()));
        // Within one batch, against the earlier change of the batch.
        let (code, error) = check(&server, &[genuine.clone(), forged.clone()]).unwrap_err();
        assert_eq!(code, reject::CONFLICT);
        assert!(error.contains("two editors used one replica id"), "{error}");
        // Against what the server holds; the genuine one again is a plain duplicate.
        server.apply_change(genuine.clone()).unwrap();
        assert!(check(&server, std::slice::from_ref(&forged)).is_err());
        assert_eq!(check(&server, &[genuine]), Ok(()));
    }

    #[test]
    fn check_batch_refuses_missing_dependencies() {
        let mut alice = Document::new(ReplicaId::from_u128(1));
        let mut bob = Document::new(ReplicaId::from_u128(2));
        let from_alice = alice.insert_text("t", 0, "a").unwrap();
        bob.apply_change(from_alice).unwrap();
        let from_bob = bob.insert_text("t", 1, "b").unwrap();
        let server = Document::new(ReplicaId::from_u128(9));
        let (code, error) = check(&server, &[from_bob]).unwrap_err();
        assert_eq!(code, reject::NOT_READY);
        assert!(error.contains("depends on changes"), "{error}");
    }
}
