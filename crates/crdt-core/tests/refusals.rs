//! What a document refuses, so that no replica can harm the others: a bounded buffer of
//! changes waiting for their past, invalid and malformed changes rejected whole, register
//! writes stamped far ahead, counter totals beyond what JavaScript holds exactly.

use crdt_core::{
    ApplyError, ApplyOutcome, Change, ChangeId, Document, FieldOp, IdRange, InlineVec, LwwOp, Op, OpId, PnCounterOp,
    ReplicaId, RgaOp, MAX_PENDING,
};

const A: ReplicaId = ReplicaId::from_u128(1);
const B: ReplicaId = ReplicaId::from_u128(2);
const C: ReplicaId = ReplicaId::from_u128(3);

fn apply_all(doc: &mut Document, changes: &[Change]) {
    for change in changes {
        doc.apply_change(change.clone()).expect("valid change");
    }
}

#[test]
fn the_buffer_is_bounded() {
    let mut doc = Document::new(B);
    let change = |seq: u64| Change { replica: A, seq, deps: Vec::new(), ops: InlineVec::new() };
    for seq in 2..(MAX_PENDING as u64 + 2) {
        assert_eq!(doc.apply_change(change(seq)), Ok(ApplyOutcome::Buffered));
    }
    assert_eq!(doc.apply_change(change(MAX_PENDING as u64 + 2)), Err(ApplyError::Invalid("too many buffered changes")));
    assert!(matches!(
        doc.apply_change(change(1)),
        Ok(ApplyOutcome::Applied { changes, .. }) if changes == MAX_PENDING + 1
    ));
    assert_eq!(doc.pending_count(), 0);
}

// ---- Invalid changes. ----

#[test]
fn invalid_change_is_rejected_whole_and_the_document_is_unchanged() {
    let mut a = Document::new(A);
    let mut b = Document::new(B);
    apply_all(&mut b, &[a.insert_text("t", 0, "hello").unwrap()]);
    let before = b.clone();
    let next = a.insert_text("t", 5, "!").unwrap();
    // A valid insert followed by a delete of an id nobody made.
    let mut bad = next.clone();
    bad.ops.push(FieldOp {
        field: "t".into(),
        op: Op::Text(RgaOp::Delete { ranges: InlineVec::one(IdRange { start: OpId::new(C, 7), len: 1 }) }),
    });
    bad.ops
        .push(FieldOp { field: "n".into(), op: Op::Counter(PnCounterOp { replica: A, increments: 1, decrements: 0 }) });
    assert_eq!(b.apply_change(bad), Err(ApplyError::UnknownId { replica: C, counter: 7 }));
    assert_eq!(b, before);
    assert_eq!(b.text("t").as_deref(), Some("hello"));
    assert_eq!(b.counter("n"), 0);
    assert!(!b.fields().any(|(name, _)| name == "n"), "no field was created");
    // The genuine change still applies. (A gap in seqs, by contrast, is buffered: see above.)
    assert!(matches!(b.apply_change(next), Ok(ApplyOutcome::Applied { .. })));
    assert_eq!(b, a);
}

#[test]
fn malformed_changes_are_rejected() {
    let mut a = Document::new(A);
    let good = a.set_register("r", "x".into());
    let mut b = Document::new(B);
    let mut zero = good.clone();
    zero.seq = 0;
    assert!(matches!(b.apply_change(zero), Err(ApplyError::Invalid(_))));
    let mut own_dep = good.clone();
    own_dep.deps.push(ChangeId { replica: A, seq: 3 });
    assert!(matches!(b.apply_change(own_dep), Err(ApplyError::Invalid(_))));
    let mut unsorted = good.clone();
    unsorted.deps = vec![ChangeId { replica: C, seq: 1 }, ChangeId { replica: B, seq: 1 }];
    assert!(matches!(b.apply_change(unsorted), Err(ApplyError::Invalid(_))));
    let mut zero_dep = good.clone();
    zero_dep.deps = vec![ChangeId { replica: C, seq: 0 }];
    assert!(matches!(b.apply_change(zero_dep), Err(ApplyError::Invalid(_))));
    let mut forged = good.clone();
    forged.replica = C;
    assert!(matches!(b.apply_change(forged), Err(ApplyError::Invalid(_))));
    // Two writes with one stamp and different values inside one change.
    let mut reused = good.clone();
    let Op::Register(op) = &good.ops[0].op else { unreachable!() };
    let twin = LwwOp { stamp: op.stamp, value: "y".to_string() };
    reused.ops.push(FieldOp { field: "r".into(), op: Op::Register(twin) });
    assert!(matches!(b.apply_change(reused), Err(ApplyError::Invalid(_))));
    assert_eq!(b, Document::new(C));
    assert_eq!(b.pending_count(), 0);
}

/// A change of `replica` (its next one on `doc`) that writes `time` into the register `field`.
fn stamped_write(doc: &Document, replica: ReplicaId, field: &str, time: u64, value: &str) -> Change {
    Change {
        replica,
        seq: doc.version().get(replica) + 1,
        deps: Vec::new(),
        ops: InlineVec::one(FieldOp {
            field: field.into(),
            op: Op::Register(LwwOp { stamp: crdt_core::Lamport { time, replica }, value: value.to_owned() }),
        }),
    }
}

#[test]
fn a_register_write_stamped_far_ahead_is_refused_and_honest_ones_pass() {
    let mut server = Document::new(ReplicaId::from_u128(9));
    let mut alice = Document::new(A);
    let mut bob = Document::new(B);
    // Honest writes, several in one change and one after another, always pass.
    let first = alice.transact(|tx| {
        tx.set_register("title", "a".into());
        tx.set_register("title", "b".into());
        Ok(())
    });
    let first = first.expect("no edit error").expect("a change");
    assert_eq!(server.check_register_stamps(std::slice::from_ref(&first)), Ok(()));
    apply_all(&mut server, std::slice::from_ref(&first));
    apply_all(&mut bob, &[first]);
    let second = bob.set_register("title", "c".into());
    let third = bob.set_register("title", "d".into());
    assert_eq!(server.check_register_stamps(&[second.clone(), third.clone()]), Ok(()));
    apply_all(&mut server, &[second, third]);
    // Four writes so far: the register's stamp is 4. A write that would pin the register:
    // stamped u64::MAX, or merely two ahead.
    assert_eq!(server.register("title"), Some("d"));
    let mallory = ReplicaId::from_u128(66);
    for time in [u64::MAX, 6] {
        let pin = stamped_write(&server, mallory, "title", time, "pinned");
        assert_eq!(server.check_register_stamps(&[pin]), Err(0), "time {time}");
    }
    // One above the current stamp is what an honest replica makes; a batch is checked in order.
    let next = 5;
    let honest = stamped_write(&server, mallory, "title", next, "fine");
    let mut after = honest.clone();
    after.seq += 1;
    after.ops = stamped_write(&server, mallory, "title", next + 2, "x").ops;
    assert_eq!(server.check_register_stamps(&[honest.clone(), after]), Err(1));
    assert_eq!(server.check_register_stamps(&[honest]), Ok(()));
}

#[test]
fn counter_totals_stop_at_2_pow_53_and_larger_ones_are_invalid() {
    let mut doc = Document::new(A);
    let change = doc.increment("likes", u64::MAX);
    assert_eq!(doc.counter("likes"), crdt_core::MAX_COUNTER_TOTAL as i64);
    assert_eq!(change.validate(), Ok(()));
    let mut other = Document::new(B);
    apply_all(&mut other, &[change]);
    assert_eq!(other.counter("likes"), crdt_core::MAX_COUNTER_TOTAL as i64);
    // A forged total above the bound (it would saturate everyone's sum) is refused.
    let forged = Change {
        replica: C,
        seq: 1,
        deps: Vec::new(),
        ops: InlineVec::one(FieldOp {
            field: "likes".into(),
            op: Op::Counter(PnCounterOp { replica: C, increments: u64::MAX, decrements: 0 }),
        }),
    };
    assert!(matches!(other.apply_change(forged), Err(ApplyError::Invalid(_))));
    assert_eq!(other.counter("likes"), crdt_core::MAX_COUNTER_TOTAL as i64);
}
