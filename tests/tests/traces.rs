//! Real editing traces (`../shared/traces`): replayed as local edits they must end at
//! `endContent`; the ops they produce, fed to a second replica in a random order that respects
//! causality, must give the same text; merge and the serialized form must agree too.

use std::collections::BTreeMap;

use crdt_core::{ReplicaId, Rga, RgaOp};
use integration_tests::{load_traces, Trace};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Replays `trace` as local edits of one replica; returns the text and every op it made.
fn replay(trace: &Trace) -> (Rga, Vec<RgaOp>) {
    let mut rga = Rga::new(ReplicaId::from_u128(0xA));
    let mut ops = Vec::with_capacity(trace.patches.len());
    if !trace.start.is_empty() {
        ops.push(rga.insert(0, &trace.start).unwrap().to_op());
    }
    for (i, p) in trace.patches.iter().enumerate() {
        if p.1 > 0 {
            let op = rga.delete(p.0, p.1).unwrap_or_else(|e| panic!("{} patch {i}: {e}", trace.name));
            ops.extend(op.into_op());
        }
        if !p.2.is_empty() {
            ops.push(rga.insert(p.0, &p.2).unwrap_or_else(|e| panic!("{} patch {i}: {e}", trace.name)).to_op());
        }
    }
    (rga, ops)
}

/// A random order of `ops` in which every op comes after the ops that made the ids it names.
fn causal_shuffle(ops: &[RgaOp], rng: &mut StdRng) -> Vec<usize> {
    // Which op inserted each id: per replica, start counter -> (end, op index).
    let mut made_by: BTreeMap<(ReplicaId, u64), (u64, usize)> = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        if let RgaOp::Insert { id, text, .. } = op {
            made_by.insert((id.replica, id.counter), (id.counter + text.chars().count() as u64, i));
        }
    }
    let maker = |replica: ReplicaId, counter: u64| -> usize {
        let (_, &(end, i)) = made_by.range(..=(replica, counter)).next_back().expect("id was inserted");
        assert!(counter < end);
        i
    };
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); ops.len()];
    let mut indegree = vec![0usize; ops.len()];
    for (i, op) in ops.iter().enumerate() {
        let mut deps = Vec::new();
        match op {
            RgaOp::Insert { id, origin_left, origin_right, .. } => {
                if id.counter > 0 {
                    deps.push(maker(id.replica, id.counter - 1));
                }
                for o in [origin_left, origin_right].into_iter().flatten() {
                    deps.push(maker(o.replica, o.counter));
                }
            }
            RgaOp::Delete { ranges } => {
                for r in ranges {
                    let mut c = r.start.counter;
                    while c < r.start.counter + r.len {
                        let m = maker(r.start.replica, c);
                        deps.push(m);
                        c = made_by.range(..=(r.start.replica, c)).next_back().unwrap().1 .0;
                    }
                }
            }
        }
        deps.sort_unstable();
        deps.dedup();
        for d in deps {
            children[d].push(i);
            indegree[i] += 1;
        }
    }
    let mut ready: Vec<usize> = (0..ops.len()).filter(|i| indegree[*i] == 0).collect();
    let mut order = Vec::with_capacity(ops.len());
    while !ready.is_empty() {
        let i = ready.swap_remove(rng.gen_range(0..ready.len()));
        order.push(i);
        for &c in &children[i] {
            indegree[c] -= 1;
            if indegree[c] == 0 {
                ready.push(c);
            }
        }
    }
    assert_eq!(order.len(), ops.len(), "dependency cycle");
    order
}

#[test]
fn every_trace_replays_to_its_end_content_locally_and_remotely() {
    let traces = load_traces();
    assert!(traces.len() >= 4, "expected the four traces, found {}", traces.len());
    let mut rng = StdRng::seed_from_u64(7);
    for trace in &traces {
        let (local, ops) = replay(trace);
        assert_eq!(local.value(), trace.end, "{}: local replay", trace.name);
        local.check_invariants();

        let order = causal_shuffle(&ops, &mut rng);
        let moved = order.iter().enumerate().filter(|(k, i)| k != *i).count();
        let mut remote = Rga::new(ReplicaId::from_u128(0xB));
        for &i in &order {
            remote.apply(&ops[i]).unwrap_or_else(|e| panic!("{}: op {i}: {e}", trace.name));
        }
        assert_eq!(remote.value(), trace.end, "{}: shuffled remote apply ({moved} ops moved)", trace.name);
        remote.check_invariants();
        assert_eq!(remote, local, "{}: same state", trace.name);

        let mut merged = Rga::new(ReplicaId::from_u128(0xC));
        merged.merge(&local);
        assert_eq!(merged.value(), trace.end, "{}: merge", trace.name);

        let bytes = bincode::serde::encode_to_vec(&local, bincode::config::standard()).unwrap();
        let limit = bincode::config::standard().with_limit::<{ 64 << 20 }>();
        let (back, _): (Rga, usize) = bincode::serde::decode_from_slice(&bytes, limit).unwrap();
        assert_eq!(back.value(), trace.end, "{}: snapshot", trace.name);
        println!("{}: {} ops, {moved} delivered out of order, snapshot {} bytes", trace.name, ops.len(), bytes.len());
    }
}

/// What a client sends per keystroke: every trace typed through a `Document`, one change per
/// patch, each sent as its own `Changes` frame on one connection (after its `Hello`), as the
/// browser does. Issue 17 asks for at most 40 bytes on average on automerge-paper; the frames
/// must also decode, on the server's side of the connection, to the changes sent.
#[test]
fn a_keystroke_costs_a_few_tens_of_bytes_on_the_wire() {
    use crdt_core::protocol::{AuthorSecret, ClientMsg, UserInfo, WireNames, PROTOCOL_VERSION};
    use crdt_core::{Document, VersionVector};
    for trace in load_traces() {
        let mut doc = Document::new(ReplicaId::from_u128(0xA));
        let (mut client, mut server) = (WireNames::new(), WireNames::new());
        let hello = ClientMsg::Hello {
            protocol: PROTOCOL_VERSION,
            replica: doc.replica(),
            author: AuthorSecret([7; 32]),
            version: VersionVector::new(),
            user: UserInfo { name: "a".into(), color: "#000".into() },
            token: String::new(),
        };
        ClientMsg::decode_on(&hello.encode_on(&mut client), 1 << 20, &mut server).unwrap();
        let (mut frames, mut bytes) = (0u64, 0u64);
        for (i, p) in trace.patches.iter().enumerate() {
            let change = match (p.1, p.2.is_empty()) {
                (_, true) => doc.delete_text("body", p.0, p.1).unwrap(),
                (0, false) => Some(doc.insert_text("body", p.0, &p.2).unwrap()),
                _ => doc
                    .transact(|t| {
                        t.delete_text("body", p.0, p.1)?;
                        t.insert_text("body", p.0, &p.2)
                    })
                    .unwrap(),
            };
            let message = ClientMsg::Changes { seq: i as u64 + 1, changes: change.into_iter().collect() };
            let frame = message.encode_on(&mut client);
            assert_eq!(
                ClientMsg::decode_on(&frame, 1 << 20, &mut server).unwrap(),
                message,
                "{} patch {i}",
                trace.name
            );
            frames += 1;
            bytes += frame.len() as u64;
        }
        let mean = bytes as f64 / frames as f64;
        println!("{}: {mean:.1} bytes per keystroke frame", trace.name);
        if trace.name == "automerge-paper" {
            assert!(mean <= 40.0, "automerge-paper: {mean:.1} bytes per keystroke frame");
        }
    }
}
