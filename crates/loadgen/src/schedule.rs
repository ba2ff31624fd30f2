//! The load shape and the open-loop schedule of keystrokes.
//!
//! Every keystroke has a time it is *due*, fixed before the run starts: client `c` types at
//! a rate of `rate` per second, each interval drawn uniformly from half to one and a half of
//! `1 / rate`, from its own seed. One scheduler thread wakes at each due time (a plain
//! `nanosleep`, about 0.1 ms late at worst, where tokio's timer wheel rounds up to whole
//! milliseconds) and hands the keystroke to its client task. Latencies are measured from the
//! due time, so a server (or a client task) that stalls shows up as latency, never as a lower
//! send rate: no coordinated omission.
//!
//! A run is three windows: *warm-up* (keystrokes sent, not measured: connections and JIT
//! settle), *measured* (every keystroke due in it counts), then *drain* (no more keystrokes;
//! the run waits for the measured ones to arrive everywhere, at most `drain`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc::UnboundedSender;

/// N clients × R keystrokes/s over M documents, and the run's timing.
#[derive(Clone, Debug)]
pub struct Shape {
    /// Typing clients (one WebSocket each).
    pub clients: usize,
    /// Keystrokes per second of each client.
    pub rate: f64,
    /// Documents; client `c` types into document `c % docs`.
    pub docs: usize,
    /// Keystrokes sent but not measured, first.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// How long to wait after it for the measured keystrokes to arrive.
    pub drain: Duration,
    /// Seeds every client's typing and timing.
    pub seed: u64,
}

impl Shape {
    /// Keystrokes per second over all clients.
    pub fn total_rate(&self) -> f64 {
        self.clients as f64 * self.rate
    }

    /// The document client `c` types into.
    pub fn doc_of(&self, client: usize) -> usize {
        client % self.docs
    }

    /// How many clients type into document `doc`.
    pub fn members(&self, doc: usize) -> usize {
        (0..self.clients).filter(|&c| self.doc_of(c) == doc).count()
    }

    /// `clients × rate over docs`, for reports.
    pub fn label(&self) -> String {
        format!("{} clients × {} keystrokes/s over {} docs", self.clients, self.rate, self.docs)
    }
}

/// When a run's windows start and end.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// The first keystroke may be due from here.
    pub start: Instant,
    /// Keystrokes due from here on are measured...
    pub measure_from: Instant,
    /// ... until here, when the schedule ends.
    pub measure_to: Instant,
}

impl Window {
    /// The windows of `shape`, starting at `start`.
    pub fn new(shape: &Shape, start: Instant) -> Window {
        let measure_from = start + shape.warmup;
        Window { start, measure_from, measure_to: measure_from + shape.duration }
    }

    /// Whether a keystroke due at `due` is measured.
    pub fn measures(&self, due: Instant) -> bool {
        due >= self.measure_from && due < self.measure_to
    }

    /// Whether `at` is inside the measured window.
    pub fn contains(&self, at: Instant) -> bool {
        at >= self.measure_from && at < self.measure_to
    }
}

/// A keystroke handed to a client: the time it was due.
#[derive(Clone, Copy, Debug)]
pub struct Tick {
    /// When the keystroke was due.
    pub due: Instant,
}

/// The scheduler thread: sends each client its ticks at their due times (from
/// `window.start` to `window.measure_to`), then drops the senders. Returns how many ticks it
/// sent, measured ones.
pub fn spawn_scheduler(shape: &Shape, window: Window, clients: Vec<UnboundedSender<Tick>>) -> JoinHandle<u64> {
    let rate = shape.rate;
    let seed = shape.seed;
    std::thread::Builder::new()
        .name("loadgen-schedule".into())
        .spawn(move || {
            let mean = Duration::from_secs_f64(1.0 / rate);
            let mut rngs: Vec<StdRng> =
                (0..clients.len()).map(|c| StdRng::seed_from_u64(seed ^ (0x5eed_0000 + c as u64))).collect();
            let mut due: BinaryHeap<Reverse<(Instant, usize)>> = BinaryHeap::with_capacity(clients.len());
            for (c, rng) in rngs.iter_mut().enumerate() {
                due.push(Reverse((window.start + mean.mul_f64(rng.gen::<f64>()), c)));
            }
            let mut measured = 0;
            while let Some(&Reverse((at, c))) = due.peek() {
                if at >= window.measure_to {
                    break;
                }
                let now = Instant::now();
                if at > now {
                    std::thread::sleep(at - now);
                    continue;
                }
                due.pop();
                // A client whose task ended (its connection closed) has dropped its receiver;
                // its keystrokes are simply not typed.
                if clients[c].send(Tick { due: at }).is_ok() && window.measures(at) {
                    measured += 1;
                }
                due.push(Reverse((at + mean.mul_f64(rngs[c].gen_range(0.5..1.5)), c)));
            }
            measured
        })
        .expect("spawn the scheduler thread")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_spread_over_documents() {
        let shape = Shape {
            clients: 50,
            rate: 20.0,
            docs: 5,
            warmup: Duration::ZERO,
            duration: Duration::from_secs(1),
            drain: Duration::ZERO,
            seed: 1,
        };
        assert_eq!(shape.total_rate(), 1000.0);
        assert!((0..5).all(|d| shape.members(d) == 10));
        assert_eq!(shape.doc_of(7), 2);
    }

    #[test]
    fn the_schedule_keeps_its_rate() {
        let shape = Shape {
            clients: 4,
            rate: 200.0,
            docs: 1,
            warmup: Duration::from_millis(100),
            duration: Duration::from_millis(500),
            drain: Duration::ZERO,
            seed: 3,
        };
        let window = Window::new(&shape, Instant::now());
        let (senders, mut receivers): (Vec<_>, Vec<_>) = (0..4).map(|_| tokio::sync::mpsc::unbounded_channel()).unzip();
        let measured = spawn_scheduler(&shape, window, senders).join().unwrap();
        // 4 clients × 200/s × 0.5 s = 400, give or take the random intervals.
        assert!((330..470).contains(&measured), "{measured} measured ticks");
        for receiver in &mut receivers {
            let mut last = window.start;
            while let Ok(tick) = receiver.try_recv() {
                assert!(tick.due >= last, "a client's ticks come in order");
                assert!(tick.due < window.measure_to, "no tick is due after the measured window");
                last = tick.due;
            }
        }
    }
}
