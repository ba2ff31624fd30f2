//! The interleaving cases of josephg/reference-crdts' test suite, each checked in many delivery
//! orders: concurrent runs typed at one spot must come out whole, never letter by letter.

use crdt_core::{ApplyError, ReplicaId, Rga, RgaOp};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// Replica ids whose order matches their letters, so the expected tie-breaks are readable.
fn replica(letter: char) -> ReplicaId {
    ReplicaId::from_u128(letter as u128)
}

/// A replica that records every op it makes.
struct Peer {
    rga: Rga,
    ops: Vec<RgaOp>,
}

impl Peer {
    fn new(letter: char) -> Self {
        Peer { rga: Rga::new(replica(letter)), ops: Vec::new() }
    }

    /// Types `text` one character at a time, each at `pos + i` (forwards) or all at `pos`
    /// (backwards, each letter before the previous one).
    fn type_at(&mut self, pos: usize, text: &str, backwards: bool) {
        for (i, ch) in text.chars().enumerate() {
            let at = if backwards { pos } else { pos + i };
            let op = self.rga.insert(at, &ch.to_string()).unwrap().to_op();
            self.ops.push(op);
        }
    }

    fn receive(&mut self, other: &Peer) {
        for op in &other.ops {
            self.rga.apply(op).unwrap();
        }
    }
}

/// Delivers all of `streams` (each in its own order) to a fresh replica in a random order that
/// keeps each stream's order, retrying ops whose causal dependencies have not arrived yet.
/// Some ops are delivered twice. Returns the resulting text and the delivery order.
fn deliver(streams: &[Vec<RgaOp>], rng: &mut StdRng) -> (String, Vec<(usize, bool)>) {
    let mut trace = Vec::new();
    let mut rga = Rga::new(replica('z'));
    let mut next = vec![0; streams.len()];
    loop {
        let live: Vec<usize> = (0..streams.len()).filter(|s| next[*s] < streams[*s].len()).collect();
        if live.is_empty() {
            break;
        }
        let mut order = live.clone();
        order.shuffle(rng);
        let mut progressed = false;
        for s in order {
            let op = &streams[s][next[s]];
            match rga.apply(op) {
                Ok(_) => {
                    let twice = rng.gen_bool(0.2);
                    if twice {
                        rga.apply(op).unwrap(); // a duplicate changes nothing
                    }
                    trace.push((s, twice));
                    next[s] += 1;
                    progressed = true;
                    break;
                }
                Err(ApplyError::UnknownId { .. }) => continue,
                Err(e) => panic!("unexpected error {e}"),
            }
        }
        assert!(progressed, "no stream could make progress");
    }
    rga.check_invariants();
    (rga.value(), trace)
}

/// Checks that `streams` delivered in random orders always give `expected`; returns how many
/// distinct delivery orders were tried.
fn check_orders(streams: &[Vec<RgaOp>], expected: &str, orders: usize) -> usize {
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..orders {
        let (text, trace) = deliver(streams, &mut rng);
        assert_eq!(text, expected, "delivery order {trace:?}");
        seen.insert(trace);
    }
    seen.len()
}

const ORDERS: usize = 200;

#[test]
fn concurrent_a_vs_b() {
    let (mut a, mut b) = (Peer::new('a'), Peer::new('b'));
    a.type_at(0, "a", false);
    b.type_at(0, "b", false);
    check_orders(&[a.ops.clone(), b.ops.clone()], "ab", ORDERS);
    a.receive(&b);
    b.receive(&a);
    assert_eq!(a.rga.value(), b.rga.value());
}

#[test]
fn interleaving_forward() {
    let (mut a, mut b) = (Peer::new('a'), Peer::new('b'));
    a.type_at(0, "aaaaa", false);
    b.type_at(0, "bbbbb", false);
    assert!(check_orders(&[a.ops, b.ops], "aaaaabbbbb", ORDERS) >= 100);
}

#[test]
fn interleaving_forward_three_peers_inside_text() {
    let mut base = Peer::new('0');
    base.type_at(0, "XY", false);
    let mut peers: Vec<Peer> = "abc".chars().map(Peer::new).collect();
    for p in &mut peers {
        p.receive(&base);
    }
    for (p, text) in peers.iter_mut().zip(["aaaa", "bbbb", "cccc"]) {
        p.type_at(1, text, false);
    }
    let mut streams = vec![base.ops.clone()];
    streams.extend(peers.iter().map(|p| p.ops.clone()));
    assert!(check_orders(&streams, "XaaaabbbbccccY", ORDERS) >= 100);
}

#[test]
fn interleaving_backward() {
    let (mut a, mut b) = (Peer::new('a'), Peer::new('b'));
    a.type_at(0, "12345", true);
    b.type_at(0, "vwxyz", true);
    // Typed backwards: each replica's text reads reversed, but whole.
    assert!(check_orders(&[a.ops, b.ops], "54321zyxwv", ORDERS) >= 100);
}

#[test]
fn interleaving_backward_inside_text() {
    let mut base = Peer::new('0');
    base.type_at(0, "XY", false);
    let (mut a, mut b) = (Peer::new('a'), Peer::new('b'));
    a.receive(&base);
    b.receive(&base);
    a.type_at(1, "abc", true);
    b.type_at(1, "xyz", true);
    assert!(check_orders(&[base.ops, a.ops, b.ops], "XcbazyxY", ORDERS) >= 100);
}

#[test]
fn with_tails() {
    let (mut a, mut b) = (Peer::new('a'), Peer::new('b'));
    // Each types a letter, then one before it and one after it.
    a.type_at(0, "a", false);
    a.type_at(0, "A", false);
    a.type_at(2, "1", false);
    b.type_at(0, "b", false);
    b.type_at(0, "B", false);
    b.type_at(2, "2", false);
    assert!(check_orders(&[a.ops, b.ops], "Aa1Bb2", ORDERS) >= 100);
}

#[test]
fn with_tails_longer() {
    let (mut a, mut b) = (Peer::new('a'), Peer::new('b'));
    a.type_at(0, "aaa", false);
    a.type_at(0, "AAA", true);
    a.type_at(6, "111", false);
    b.type_at(0, "bbb", false);
    b.type_at(0, "BBB", true);
    b.type_at(6, "222", false);
    assert!(check_orders(&[a.ops, b.ops], "AAAaaa111BBBbbb222", ORDERS) >= 100);
}

#[test]
fn local_vs_concurrent() {
    let (mut a, mut b) = (Peer::new('a'), Peer::new('b'));
    a.type_at(0, "a", false);
    b.receive(&a);
    b.type_at(1, "ccc", false);
    a.type_at(1, "b", false);
    a.type_at(1, "ddd", false);
    assert!(check_orders(&[a.ops.clone(), b.ops.clone()], "adddbccc", ORDERS) >= 100);
    a.receive(&b);
    assert_eq!(a.rga.value(), "adddbccc");
}

#[test]
fn deletes_in_any_order() {
    let (mut a, mut b) = (Peer::new('a'), Peer::new('b'));
    a.type_at(0, "hello world", false);
    b.receive(&a);
    a.ops.push(a.rga.delete(0, 6).unwrap().into_op().unwrap());
    b.ops.push(b.rga.delete(4, 3).unwrap().into_op().unwrap());
    b.type_at(4, "!", false);
    assert!(check_orders(&[a.ops, b.ops], "!orld", ORDERS) >= 100);
}
