//! Criterion micro-benchmarks of the `Rga` hot paths, on synthetic edits with fixed seeds.
//!
//! Run with `CARGO_TARGET_DIR=/work/target-bench cargo bench -p bench --bench rga`; filter with a
//! name, e.g. `-- rga/local_append`. Throughput is in edits (characters) per second.

use crdt_core::{ReplicaId, Rga, RgaOp};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const N: usize = 10_000;
const RUN: usize = 1_000;

fn replica(n: u128) -> ReplicaId {
    ReplicaId::from_u128(n)
}

/// A text of `n` characters typed in one go by replica 1.
fn typed(n: usize) -> Rga {
    let mut rga = Rga::new(replica(1));
    rga.insert(0, &"x".repeat(n)).expect("insert");
    rga
}

/// `n` one-character inserts at seeded random positions into `rga`, returning their ops.
fn random_inserts(rga: &mut Rga, n: usize, seed: u64) -> Vec<RgaOp> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let pos = rng.gen_range(0..=rga.len());
            rga.insert(pos, "r").expect("insert").to_op()
        })
        .collect()
}

fn local(c: &mut Criterion) {
    let mut g = c.benchmark_group("rga");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("local_append_10k", |b| {
        b.iter(|| {
            let mut rga = Rga::new(replica(1));
            for i in 0..N {
                black_box(rga.insert(i, "a").expect("insert"));
            }
            rga
        })
    });
    let mut rng = StdRng::seed_from_u64(7);
    let positions: Vec<usize> = (0..N).map(|i| rng.gen_range(0..=i)).collect();
    g.bench_function("local_insert_random_pos_10k", |b| {
        b.iter(|| {
            let mut rga = Rga::new(replica(1));
            for &pos in &positions {
                black_box(rga.insert(pos, "a").expect("insert"));
            }
            rga
        })
    });
    g.throughput(Throughput::Elements(RUN as u64));
    g.bench_function("local_delete_run_backspace_1k_of_10k", |b| {
        b.iter_batched(
            || typed(N),
            |mut rga| {
                for k in 0..RUN {
                    black_box(rga.delete(N / 2 - 1 - k, 1).expect("delete"));
                }
                rga
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("local_delete_range_1k_of_10k_one_call", |b| {
        b.iter_batched(
            || typed(N),
            |mut rga| {
                black_box(rga.delete(N / 4, RUN).expect("delete"));
                rga
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn remote(c: &mut Criterion) {
    let mut g = c.benchmark_group("rga");

    // Two replicas type 1k characters each, one at a time, at the same spot of a shared text.
    let base = typed(100);
    let mut a = base.clone();
    a.set_replica(replica(2));
    let mut b = base.clone();
    b.set_replica(replica(3));
    let mut b_ops = Vec::new();
    for k in 0..RUN {
        a.insert(50 + k, "a").expect("insert");
        b_ops.push(b.insert(50 + k, "b").expect("insert").to_op());
    }
    g.throughput(Throughput::Elements(RUN as u64));
    g.bench_function("remote_integrate_concurrent_inserts_same_spot_1k", |bench| {
        bench.iter_batched(
            || a.clone(),
            |mut a| {
                for op in &b_ops {
                    a.apply(op).expect("apply");
                }
                a
            },
            BatchSize::SmallInput,
        )
    });

    // Two replicas make 1k inserts each at random positions of a shared 10k text.
    let base = typed(N);
    let mut a = base.clone();
    a.set_replica(replica(2));
    random_inserts(&mut a, RUN, 11);
    let mut b = base.clone();
    b.set_replica(replica(3));
    let b_ops = random_inserts(&mut b, RUN, 12);
    g.bench_function("remote_integrate_concurrent_inserts_random_1k", |bench| {
        bench.iter_batched(
            || a.clone(),
            |mut a| {
                for op in &b_ops {
                    a.apply(op).expect("apply");
                }
                a
            },
            BatchSize::SmallInput,
        )
    });

    // A fresh replica applying 10k typed characters, one op each.
    let mut src = Rga::new(replica(1));
    let typing: Vec<RgaOp> = (0..N).map(|i| src.insert(i, "t").expect("insert").to_op()).collect();
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("remote_apply_typing_10k", |bench| {
        bench.iter(|| {
            let mut rga = Rga::new(replica(2));
            for op in &typing {
                rga.apply(op).expect("apply");
            }
            rga
        })
    });

    // State merge of two replicas with 10k concurrent random inserts each.
    let mut a = Rga::new(replica(2));
    random_inserts(&mut a, N, 21);
    let mut b = Rga::new(replica(3));
    random_inserts(&mut b, N, 22);
    g.bench_function("merge_concurrent_10k", |bench| {
        bench.iter_batched(
            || a.clone(),
            |mut a| {
                a.merge(&b);
                a
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, local, remote);
criterion_main!(benches);
