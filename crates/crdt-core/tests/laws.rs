//! Semilattice laws and op/state agreement for the counters, the LWW register and the OR-Set.
//!
//! Every type runs through the same two generic properties:
//! - [`laws_hold`]: `merge` is commutative, associative and idempotent, compared on `value()` and
//!   on full state equality, for three states drawn from one simulated run;
//! - [`ops_converge`]: delivering every operation of the run to fresh replicas, in random order,
//!   with duplicates, and retrying operations that are not causally ready, gives the same state
//!   on every replica, equal to the merge of all replicas' final states.
//!
//! A run is a list of [`Action`]s over 2–4 replicas (`ReplicaId::from_u128(1..=4)`): local edits,
//! state syncs, single-op deliveries and snapshots, so the states overlap in random ways.

use std::fmt::Debug;

use crdt_core::{
    Applied, ApplyError, Dot, GCounter, GCounterOp, LwwOp, LwwRegister, OrSet, OrSetOp, PnCounter, PnCounterOp,
    ReplicaId,
};
use proptest::prelude::*;
use proptest::sample::Index;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

fn replica_id(index: usize) -> ReplicaId {
    ReplicaId::from_u128(index as u128 + 1)
}

/// The common surface of the types under test, so the properties are written once.
trait Crdt: Clone + PartialEq + Debug + Default {
    type Value: PartialEq + Debug;
    type Op: Clone + Debug;
    type Edit: Clone + Debug + 'static;

    fn edit_strategy() -> BoxedStrategy<Self::Edit>;
    fn edit(&mut self, replica: ReplicaId, edit: &Self::Edit) -> Option<Self::Op>;
    fn apply_op(&mut self, op: &Self::Op) -> Result<Applied, ApplyError>;
    fn join(&mut self, other: &Self);
    fn read(&self) -> Self::Value;
    fn check(&self);
}

impl Crdt for GCounter {
    type Value = u64;
    type Op = GCounterOp;
    type Edit = u64;

    fn edit_strategy() -> BoxedStrategy<u64> {
        prop_oneof![9 => 0u64..5, 1 => Just(u64::MAX / 2)].boxed()
    }
    fn edit(&mut self, replica: ReplicaId, n: &u64) -> Option<GCounterOp> {
        Some(self.increment(replica, *n))
    }
    fn apply_op(&mut self, op: &GCounterOp) -> Result<Applied, ApplyError> {
        self.apply(op)
    }
    fn join(&mut self, other: &Self) {
        self.merge(other);
    }
    fn read(&self) -> u64 {
        self.value()
    }
    fn check(&self) {
        self.check_invariants();
    }
}

impl Crdt for PnCounter {
    type Value = i64;
    type Op = PnCounterOp;
    /// `(increment?, amount)`.
    type Edit = (bool, u64);

    fn edit_strategy() -> BoxedStrategy<(bool, u64)> {
        (any::<bool>(), prop_oneof![9 => 0u64..5, 1 => Just(u64::MAX / 2)]).boxed()
    }
    fn edit(&mut self, replica: ReplicaId, &(up, n): &(bool, u64)) -> Option<PnCounterOp> {
        Some(if up { self.increment(replica, n) } else { self.decrement(replica, n) })
    }
    fn apply_op(&mut self, op: &PnCounterOp) -> Result<Applied, ApplyError> {
        self.apply(op)
    }
    fn join(&mut self, other: &Self) {
        self.merge(other);
    }
    fn read(&self) -> i64 {
        self.value()
    }
    fn check(&self) {
        self.check_invariants();
    }
}

impl Crdt for LwwRegister<u8> {
    type Value = Option<u8>;
    type Op = LwwOp<u8>;
    type Edit = u8;

    fn edit_strategy() -> BoxedStrategy<u8> {
        (0u8..4).boxed()
    }
    fn edit(&mut self, replica: ReplicaId, value: &u8) -> Option<LwwOp<u8>> {
        Some(self.set(replica, *value))
    }
    fn apply_op(&mut self, op: &LwwOp<u8>) -> Result<Applied, ApplyError> {
        self.apply(op)
    }
    fn join(&mut self, other: &Self) {
        self.merge(other);
    }
    fn read(&self) -> Option<u8> {
        self.value().copied()
    }
    fn check(&self) {
        self.check_invariants();
    }
}

impl Crdt for OrSet<u8> {
    type Value = Vec<u8>;
    type Op = OrSetOp<u8>;
    /// `(add?, element)`.
    type Edit = (bool, u8);

    fn edit_strategy() -> BoxedStrategy<(bool, u8)> {
        (any::<bool>(), 0u8..5).boxed()
    }
    fn edit(&mut self, replica: ReplicaId, &(add, value): &(bool, u8)) -> Option<OrSetOp<u8>> {
        if add {
            Some(self.add(replica, value))
        } else {
            self.remove(&value)
        }
    }
    fn apply_op(&mut self, op: &OrSetOp<u8>) -> Result<Applied, ApplyError> {
        self.apply(op)
    }
    fn join(&mut self, other: &Self) {
        self.merge(other);
    }
    fn read(&self) -> Vec<u8> {
        self.iter().copied().collect()
    }
    fn check(&self) {
        self.check_invariants();
    }
}

/// One step of a simulated run. Replica indices are taken modulo the number of replicas.
#[derive(Clone, Debug)]
enum Action<E> {
    /// A local edit on one replica.
    Edit { replica: usize, edit: E },
    /// `to` merges the whole state of `from`.
    Sync { from: usize, to: usize },
    /// `to` applies one operation made by `from` (skipped if not causally ready).
    Deliver { from: usize, to: usize, nth: Index },
    /// The current state of a replica joins the pool the law tests pick from.
    Snapshot { replica: usize },
}

#[derive(Clone, Debug)]
struct Scenario<E> {
    replicas: usize,
    actions: Vec<Action<E>>,
    picks: [Index; 3],
    seed: u64,
}

fn action<S: Crdt>() -> impl Strategy<Value = Action<S::Edit>> {
    let r = || 0usize..4;
    prop_oneof![
        5 => (r(), S::edit_strategy()).prop_map(|(replica, edit)| Action::Edit { replica, edit }),
        1 => (r(), r()).prop_map(|(from, to)| Action::Sync { from, to }),
        2 => (r(), r(), any::<Index>()).prop_map(|(from, to, nth)| Action::Deliver { from, to, nth }),
        1 => r().prop_map(|replica| Action::Snapshot { replica }),
    ]
}

fn scenario<S: Crdt>() -> impl Strategy<Value = Scenario<S::Edit>> {
    (2usize..=4, prop::collection::vec(action::<S>(), 0..48), prop::array::uniform3(any::<Index>()), any::<u64>())
        .prop_map(|(replicas, actions, picks, seed)| Scenario { replicas, actions, picks, seed })
}

/// The outcome of a run: final states, every op in the order it was made, and a pool of states.
struct World<S: Crdt> {
    states: Vec<S>,
    history: Vec<S::Op>,
    pool: Vec<S>,
}

/// True for the errors that mean "not causally ready yet, deliver later".
fn is_not_ready(error: &ApplyError) -> bool {
    matches!(error, ApplyError::OutOfOrder { .. } | ApplyError::UnknownId { .. })
}

fn run<S: Crdt>(sc: &Scenario<S::Edit>) -> Result<World<S>, TestCaseError> {
    let n = sc.replicas;
    let mut states = vec![S::default(); n];
    let mut made: Vec<Vec<S::Op>> = vec![Vec::new(); n];
    let mut history = Vec::new();
    let mut pool = Vec::new();
    for action in &sc.actions {
        match action {
            Action::Edit { replica, edit } => {
                let i = replica % n;
                if let Some(op) = states[i].edit(replica_id(i), edit) {
                    made[i].push(op.clone());
                    history.push(op);
                }
                states[i].check();
            }
            Action::Sync { from, to } => {
                let source = states[from % n].clone();
                states[to % n].join(&source);
                states[to % n].check();
            }
            Action::Deliver { from, to, nth } => {
                let ops = &made[from % n];
                if ops.is_empty() {
                    continue;
                }
                let op = ops[nth.index(ops.len())].clone();
                if let Err(error) = states[to % n].apply_op(&op) {
                    prop_assert!(is_not_ready(&error), "unexpected error: {error}");
                }
                states[to % n].check();
            }
            Action::Snapshot { replica } => pool.push(states[replica % n].clone()),
        }
    }
    pool.extend(states.iter().cloned());
    Ok(World { states, history, pool })
}

fn merged<S: Crdt>(a: &S, b: &S) -> S {
    let mut m = a.clone();
    m.join(b);
    m.check();
    m
}

fn prop_same<S: Crdt>(x: &S, y: &S, law: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(x.read(), y.read(), "{} (values)", law);
    prop_assert_eq!(x, y, "{} (states)", law);
    Ok(())
}

/// Commutativity, associativity and idempotence of `merge` on three states of one run.
fn laws_hold<S: Crdt>(sc: &Scenario<S::Edit>) -> Result<(), TestCaseError> {
    let world = run::<S>(sc)?;
    let [a, b, c] = sc.picks.map(|pick| &world.pool[pick.index(world.pool.len())]);
    for s in [a, b, c] {
        s.check();
    }
    prop_same(&merged(a, b), &merged(b, a), "a + b = b + a")?;
    prop_same(&merged(&merged(a, b), c), &merged(a, &merged(b, c)), "(a + b) + c = a + (b + c)")?;
    prop_same(&merged(a, a), a, "a + a = a")?;
    let ab = merged(a, b);
    prop_same(&merged(&ab, b), &ab, "(a + b) + b = a + b")?;
    Ok(())
}

/// Delivers `ops` to a fresh replica in random order, retrying ops that are not ready yet.
fn deliver_all<S: Crdt>(ops: &[S::Op], rng: &mut StdRng) -> Result<S, TestCaseError> {
    let mut state = S::default();
    let mut pending: Vec<S::Op> = ops.to_vec();
    while !pending.is_empty() {
        pending.shuffle(rng);
        let before = pending.len();
        let mut waiting = Vec::new();
        for op in pending {
            match state.apply_op(&op) {
                Ok(_) => {}
                Err(error) if is_not_ready(&error) => waiting.push(op),
                Err(error) => return Err(TestCaseError::fail(format!("{error} on {op:?}"))),
            }
            state.check();
        }
        prop_assert!(waiting.len() < before, "delivery is stuck on {:?}", waiting);
        pending = waiting;
    }
    Ok(state)
}

/// Op-based delivery in any (causally ready) order, with duplicates, equals the state merge.
fn ops_converge<S: Crdt>(sc: &Scenario<S::Edit>) -> Result<(), TestCaseError> {
    let world = run::<S>(sc)?;
    let mut expected = S::default();
    for state in &world.states {
        expected.join(state);
    }
    expected.check();
    let mut rng = StdRng::seed_from_u64(sc.seed);
    for _ in 0..sc.replicas {
        let mut ops = world.history.clone();
        for op in &world.history {
            if rng.gen_bool(0.3) {
                ops.push(op.clone());
            }
        }
        let replica = deliver_all::<S>(&ops, &mut rng)?;
        prop_same(&replica, &expected, "ops delivered = merge of states")?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn g_counter_merge_laws(sc in scenario::<GCounter>()) {
        laws_hold::<GCounter>(&sc)?;
    }

    #[test]
    fn g_counter_ops_converge(sc in scenario::<GCounter>()) {
        ops_converge::<GCounter>(&sc)?;
    }

    #[test]
    fn pn_counter_merge_laws(sc in scenario::<PnCounter>()) {
        laws_hold::<PnCounter>(&sc)?;
    }

    #[test]
    fn pn_counter_ops_converge(sc in scenario::<PnCounter>()) {
        ops_converge::<PnCounter>(&sc)?;
    }

    #[test]
    fn lww_register_merge_laws(sc in scenario::<LwwRegister<u8>>()) {
        laws_hold::<LwwRegister<u8>>(&sc)?;
    }

    #[test]
    fn lww_register_ops_converge(sc in scenario::<LwwRegister<u8>>()) {
        ops_converge::<LwwRegister<u8>>(&sc)?;
    }

    #[test]
    fn or_set_merge_laws(sc in scenario::<OrSet<u8>>()) {
        laws_hold::<OrSet<u8>>(&sc)?;
    }

    #[test]
    fn or_set_ops_converge(sc in scenario::<OrSet<u8>>()) {
        ops_converge::<OrSet<u8>>(&sc)?;
    }
}

const R1: ReplicaId = ReplicaId::from_u128(1);
const R2: ReplicaId = ReplicaId::from_u128(2);

#[test]
fn or_set_concurrent_add_and_remove_add_wins() {
    let mut a = OrSet::new();
    let mut b = OrSet::new();
    let first = a.add(R1, 1u8);
    b.apply(&first).unwrap();
    // Concurrently: R1 removes the element while R2 adds it again.
    let remove = a.remove(&1).unwrap();
    let add = b.add(R2, 1);
    assert_eq!(a.apply(&add), Ok(Applied::Changed));
    // R2's add had already superseded the dot the remove names, so the remove finds nothing.
    assert_eq!(b.apply(&remove), Ok(Applied::Duplicate));
    assert_eq!(a, b);
    assert!(a.contains(&1), "the add the remove did not observe survives");
    assert_eq!(a.dots(&1).collect::<Vec<_>>(), vec![Dot::new(R2, 1)]);
    a.check_invariants();

    // The state merge agrees with op delivery.
    let mut c = OrSet::new();
    c.add(R1, 1u8);
    let mut d = c.clone();
    c.remove(&1);
    d.add(R2, 1);
    c.merge(&d);
    assert_eq!(c, a);
}

#[test]
fn or_set_re_adding_keeps_one_dot() {
    let mut a = OrSet::new();
    let mut b = OrSet::new();
    for _ in 0..1000 {
        let op = a.add(R1, 42u8);
        b.apply(&op).unwrap();
    }
    assert_eq!(a.dots(&42).collect::<Vec<_>>(), vec![Dot::new(R1, 1000)]);
    assert_eq!(a, b);
    assert_eq!(a.len(), 1);
    a.check_invariants();
}

#[test]
fn or_set_remove_then_add() {
    let mut a = OrSet::new();
    let mut b = OrSet::new();
    let ops = [Some(a.add(R1, 'x')), a.remove(&'x'), Some(a.add(R1, 'x'))];
    assert!(a.contains(&'x'));
    for op in ops.iter().flatten() {
        b.apply(op).unwrap();
    }
    assert_eq!(a, b);
    assert_eq!(b.value(), vec![&'x']);
    // Removing again empties both.
    let remove = b.remove(&'x').unwrap();
    assert_eq!(a.apply(&remove), Ok(Applied::Changed));
    assert!(a.is_empty());
    assert_eq!(a, b);
}
