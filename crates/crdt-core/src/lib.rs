//! crdt-core: conflict-free replicated data types for collaborative documents.
#![warn(missing_docs)]

mod clock;
pub mod codec;
mod counter;
mod document;
mod error;
mod inline_vec;
mod lww_register;
mod or_set;
pub mod protocol;
mod rga;
mod varint;
mod wire;

pub use clock::{Lamport, OpId, ReplicaId, VersionVector};
pub use counter::{GCounter, GCounterOp, PnCounter, PnCounterOp};
pub use document::{
    causal_order, ApplyOutcome, Change, ChangeId, DocValue, Document, FieldKind, FieldName, FieldOp, FieldValue, Op,
    Transaction, MAX_COUNTER_TOTAL, MAX_DEPS, MAX_PENDING, MAX_SEQ,
};
pub use error::{Applied, ApplyError, DecodeError, EditError};
pub use inline_vec::InlineVec;
pub use lww_register::{LwwOp, LwwRegister};
pub use or_set::{Dot, OrSet, OrSetOp};
pub use rga::{Anchor, IdRange, LocalDelete, LocalInsert, Rga, RgaOp, TextDelta};
/// The string type of inserted text ([`RgaOp::Insert`]): up to 23 bytes inline (a keystroke
/// allocates nothing), longer ones shared. Serialized exactly as a `String`.
pub use smol_str::SmolStr;
