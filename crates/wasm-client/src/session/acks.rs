//! Acknowledgements: an `Ack` settles the pending changes it covers, a refusal for good
//! discards the refused changes (and what depends on them), and the state hash it carries
//! tells whether this copy diverged from the server's.

use super::*;

impl Session {
    pub(super) fn ack(&mut self, seq: u64, status: AckStatus, version: VersionVector, hash: u64) -> Event {
        let mut event = Event::new(EventKind::Ack);
        // An ack carries the entries of the server's version that changed since the last
        // Welcome or Ack of this connection; `told` is the whole of it.
        let (told, refused) = match &mut self.link {
            Link::Up { told, inflight, .. } => {
                told.merge(&version);
                // Acks come in `seq` order; an Applied one covers the earlier batches too.
                let mut refused = Vec::new();
                while inflight.front().is_some_and(|(sent, _)| *sent <= seq) {
                    if let Some((sent, ids)) = inflight.pop_front() {
                        if sent == seq {
                            refused = ids;
                        }
                    }
                }
                (told.clone(), refused)
            }
            _ => (version, Vec::new()),
        };
        if let Some(notice) = self.give_back_acked(seq, &status) {
            // A give-back's refusal: nothing of this session's own is concerned.
            event.message = notice;
            event.diverged = self.diverged(&told, hash);
            return event;
        }
        match status {
            AckStatus::Applied => {
                self.server_version.merge(&told);
                event.acked = self.prune();
            }
            AckStatus::Rejected { code: reject::NOT_READY, reason } => {
                // Nothing is dropped: the refused changes are in the text and in storage, and
                // the next connection offers them again (by then the server may have what they
                // depend on). This connection sends nothing more.
                if let Link::Up { stalled, .. } = &mut self.link {
                    *stalled = true;
                }
                event.message = Some(format!(
                    "the server refused batch {seq} ({reason}); your edits are kept and will be offered again \
                     when the connection is renewed"
                ));
            }
            AckStatus::Rejected { code, reason } => {
                // Refused for good: offering these again would be refused again, for ever.
                let discarded = self.discard(&refused);
                if let Link::Up { stalled, sent, .. } = &mut self.link {
                    *stalled = true;
                    *sent = 0;
                }
                self.start_resync();
                event.reconnect = true;
                event.message = Some(refusal_words(code, &reason, discarded));
            }
        }
        event.diverged = self.diverged(&told, hash);
        event
    }

    /// Drops `refused` and every pending change that depends on one of them (later changes of
    /// the same replica, and changes whose deps reach them) from `pending`, `unsaved` and the
    /// changes waiting from other tabs; returns how many pending changes went. If the current
    /// replica lost a change, the session edits as a new replica (its next seq would follow
    /// a change nobody else will ever have). The document still holds them until the resync.
    pub(super) fn discard(&mut self, refused: &[ChangeId]) -> usize {
        let mut bad_from: HashMap<ReplicaId, u64> = HashMap::new();
        for id in refused {
            let from = bad_from.entry(id.replica).or_insert(id.seq);
            *from = (*from).min(id.seq);
        }
        let depends = |change: &Change, bad_from: &HashMap<ReplicaId, u64>| {
            bad_from.get(&change.replica).is_some_and(|&from| change.seq >= from)
                || change.deps.iter().any(|dep| bad_from.get(&dep.replica).is_some_and(|&from| dep.seq >= from))
        };
        // `pending` is in causal order, so one pass sees a change's past before it.
        let before = self.pending.len();
        let mut kept = VecDeque::with_capacity(before);
        for change in std::mem::take(&mut self.pending) {
            if depends(&change, &bad_from) {
                let from = bad_from.entry(change.replica).or_insert(change.seq);
                *from = (*from).min(change.seq);
                self.forget_seq(&change);
            } else {
                kept.push_back(change);
            }
        }
        self.pending = kept;
        self.unsaved.retain(|change| !depends(change, &bad_from));
        self.from_tabs.retain(|change| !depends(change, &bad_from));
        self.needs_compaction = true;
        if bad_from.contains_key(&self.doc.replica()) {
            self.remint(ReplicaId::random());
        }
        before - self.pending.len()
    }

    /// True if this document is at exactly `version` but its state differs from the server's.
    pub(super) fn diverged(&self, version: &VersionVector, hash: u64) -> bool {
        self.doc.version() == version && self.doc.state_hash() != hash
    }
}

/// What a person reads when the server refused `count` of their changes for good (`code`,
/// with the server's `reason` for the curious): what happened to the edit and that the rest
/// still syncs.
pub(super) fn refusal_words(code: u16, reason: &str, count: usize) -> String {
    let what = match code {
        reject::TEXT_TOO_LARGE => "the document would grow beyond the size the server allows",
        reject::TOO_MANY_FIELDS | reject::FIELD_NAME_TOO_LONG => "it goes beyond what the server allows a document",
        reject::READ_ONLY => "this link only lets you read the document",
        reject::NOT_OWNER => "it was made under an identity another person's browser uses",
        _ => "the server could not accept it",
    };
    let edits = if count == 1 { "1 edit".to_owned() } else { format!("{count} edits") };
    format!(
        "The server did not accept your last change: {what}. It was removed from this page ({edits}); \
         everything else keeps syncing. (Server: {reason}.)"
    )
}
