//! Replica ownership: who may author changes as which replica, and who may join as which.
//!
//! A connection proves who it is with the [`AuthorSecret`] of its `Hello`; the actor keeps only
//! the secret's SHA-256 ([`author_hash`]), per replica of the document (`DocActor::authors`,
//! loaded with the document, registered in the store). The rules (PROTOCOL.md section 5):
//!
//! - a *new* change (one the document does not hold) of replica R is accepted only if R is
//!   registered to the connection's hash, or R is registered to no one and no other live
//!   connection uses R as its replica with another secret; R is then registered to the
//!   connection's hash, durably before the batch is acknowledged;
//! - a change the document already holds is a duplicate whoever sends it, as long as it is the
//!   same change (`round::check_batch`), so relaying changes stays harmless;
//! - a `Hello` is refused when its replica is another live (or joining) connection's, or is
//!   registered to another hash. It is never obeyed by closing the other connection.
//!
//! # Invariants
//! - `DocActor::authors` holds every registration in the store, plus those of the current
//!   round, which `finish` commits before it acknowledges or welcomes anything.
//! - A registration is never replaced or removed.

use crdt_core::protocol::{reject, AuthorSecret};
use crdt_core::{Change, ReplicaId};
use sha2::{Digest, Sha256};

use super::round::Round;
use super::{ConnId, DocActor, JoinRequest};
use crate::storage::AuthorHash;

/// What the server keeps of an author secret.
pub fn author_hash(secret: &AuthorSecret) -> AuthorHash {
    Sha256::digest(secret.0).into()
}

impl DocActor {
    /// Why `join` may not join (its replica is in use or owned by another author), if so.
    pub(super) fn check_join(&self, join: &JoinRequest, round: &Round) -> Result<(), String> {
        let replica = join.replica;
        if replica == self.doc.replica() {
            return Err(format!("replica {replica} is the server's own; connect as a new replica id"));
        }
        let in_use = self.peers.values().any(|entry| entry.peer.replica == replica)
            || round.joins.iter().any(|other| other.replica == replica);
        if in_use {
            return Err(format!(
                "replica {replica} is in use by another connection to this document; connect as a new replica id"
            ));
        }
        if self.authors.get(&replica).is_some_and(|owner| *owner != join.author) {
            return Err(format!(
                "replica {replica} belongs to another author (a different author secret); connect as a new \
                 replica id"
            ));
        }
        Ok(())
    }

    /// Checks that `conn` may author every new change of `changes`; returns the replicas it
    /// authors for the first time (to register once the batch is applied), or the reject code
    /// and reason.
    pub(super) fn check_authors(
        &self,
        conn: ConnId,
        changes: &[Change],
        round: &Round,
    ) -> Result<Vec<ReplicaId>, (u16, String)> {
        let Some(author) = self.peers.get(&conn).map(|entry| entry.author) else {
            return Err((reject::NOT_OWNER, "the connection has not joined".into()));
        };
        let mut new = Vec::new();
        for (index, change) in changes.iter().enumerate() {
            let replica = change.replica;
            if change.seq <= self.doc.version().get(replica) || new.contains(&replica) {
                continue; // A duplicate (compared by `check_batch`), or already checked.
            }
            if replica == self.doc.replica() {
                return Err((
                    reject::NOT_OWNER,
                    format!("change {index} is authored as replica {replica}, the server's own"),
                ));
            }
            match self.authors.get(&replica) {
                Some(owner) if *owner == author => continue,
                Some(_) => {
                    return Err((
                        reject::NOT_OWNER,
                        format!(
                            "change {index} is authored as replica {replica}, which belongs to another author: \
                             a connection writes only as replicas its author secret owns"
                        ),
                    ))
                }
                None => {}
            }
            // Unregistered: still claimed by a live connection that uses it with another secret.
            let claimed = self
                .peers
                .iter()
                .any(|(other, entry)| *other != conn && entry.peer.replica == replica && entry.author != author)
                || round.joins.iter().any(|join| join.replica == replica && join.author != author);
            if claimed {
                return Err((
                    reject::NOT_OWNER,
                    format!(
                        "change {index} is authored as replica {replica}, which another connection is using: \
                         a connection writes only as replicas its author secret owns"
                    ),
                ));
            }
            new.push(replica);
        }
        Ok(new)
    }

    /// Registers `replicas` to `conn`'s author: at once in memory, in the store before the
    /// round is acknowledged (`round::finish`).
    pub(super) fn register(&mut self, conn: ConnId, replicas: Vec<ReplicaId>, round: &mut Round) {
        let Some(author) = self.peers.get(&conn).map(|entry| entry.author) else { return };
        for replica in replicas {
            if self.authors.insert(replica, author).is_none() {
                round.registrations.push((replica, author));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_sha256_of_the_secret_bytes() {
        // SHA-256 of 32 zero bytes.
        let expected = "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925";
        let hex: String = author_hash(&AuthorSecret([0; 32])).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
        assert_ne!(author_hash(&AuthorSecret([0; 32])), author_hash(&AuthorSecret([1; 32])));
    }
}
