//! Counters: [`GCounter`] (grow-only) and [`PnCounter`] (increments and decrements).
//!
//! Both are per-replica maps of running totals. A replica only ever raises its own total, so the
//! operation it sends is its *new total*, not the delta: applying an operation is a pointwise
//! `max`, which makes delivery idempotent (a re-delivered or older operation changes nothing and
//! returns [`Applied::Duplicate`](crate::Applied::Duplicate)) and commutative (operations need no
//! causal order at all). Merging two states is the same pointwise `max` over every replica.
//!
//! ```text
//! replica A: increment(3) -> GCounterOp { A, total: 3 }
//! replica B: increment(2) -> GCounterOp { B, total: 2 }
//! replica A: increment(1) -> GCounterOp { A, total: 4 }
//! any replica, in any order, with repeats: { A: 4, B: 2 }, value 6
//! ```
//!
//! Totals saturate at `u64::MAX` rather than wrapping, so a counter never goes backwards.
//!
//! # Invariants
//! - A [`GCounter`] stores no entry with value 0 ("never incremented" and "no entry" are the same
//!   state, so equality is structural).
//! - A [`PnCounter`] is two [`GCounter`]s, each satisfying the above.

mod g_counter;
mod pn_counter;

pub use g_counter::{GCounter, GCounterOp};
pub use pn_counter::{PnCounter, PnCounterOp};
