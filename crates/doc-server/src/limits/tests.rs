use std::net::Ipv4Addr;

use super::*;

fn config() -> Config {
    Config::with_data_dir(std::env::temp_dir())
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Within a microsecond of `expected` (the buckets count in floating point).
fn about(actual: Duration, expected: Duration) -> bool {
    actual.abs_diff(expected) < Duration::from_micros(1)
}

fn waits(verdict: Verdict, expected: Duration) -> bool {
    matches!(verdict, Verdict::Wait(wait) if about(wait, expected))
}

#[test]
fn a_bucket_lends_its_burst_then_charges_time() {
    let start = Instant::now();
    let mut bucket = TokenBucket::new(100.0, 500.0, start).unwrap();
    assert_eq!(bucket.take(500.0, start), Duration::ZERO, "the burst passes at once");
    assert!(about(bucket.take(50.0, start), ms(500)), "50 more at 100/s: half a second of debt");
    // Half a second later the debt is repaid; another half second buys 50.
    assert_eq!(bucket.take(50.0, start + ms(1000)), Duration::ZERO);
    assert!(about(bucket.take(1.0, start + ms(1000)), ms(10)));
    // Idle for a minute: back to the burst, not beyond it.
    assert!(bucket.is_full(start + Duration::from_secs(60)));
    assert_eq!(bucket.take(500.0, start + Duration::from_secs(60)), Duration::ZERO);
    assert!(bucket.take(1.0, start + Duration::from_secs(60)) > Duration::ZERO);
    assert!(TokenBucket::new(0.0, 10.0, start).is_none(), "rate 0 is no limit");
}

#[test]
fn try_take_one_never_goes_into_debt() {
    let start = Instant::now();
    let mut bucket = TokenBucket::new(2.0, 2.0, start).unwrap();
    assert_eq!(bucket.try_take_one(start), Ok(()));
    assert_eq!(bucket.try_take_one(start), Ok(()));
    assert!(bucket.try_take_one(start).is_err_and(|wait| about(wait, ms(500))));
    assert!(bucket.try_take_one(start).is_err_and(|wait| about(wait, ms(500))), "a refusal costs nothing");
    assert_eq!(bucket.try_take_one(start + ms(500)), Ok(()));
}

#[test]
fn a_connection_is_throttled_over_its_rate_and_closed_only_when_it_stays_there() {
    let mut config = config();
    config.changes_per_second = 100;
    config.bytes_per_second = 0;
    config.flood_close_after = Duration::from_secs(10);
    let start = Instant::now();
    let mut rates = ConnectionRates::new(&config, start);
    // Five seconds' worth at once, then every change waits for its token.
    assert_eq!(rates.charge(500, 10, start), Verdict::Pass);
    assert!(waits(rates.charge(100, 10, start), ms(1000)));
    // A client that waits each time and sends again at once is throttled on every message...
    let mut now = start + ms(1000);
    for _ in 0..8 {
        assert!(waits(rates.charge(100, 10, now), ms(1000)));
        now += ms(1000);
    }
    // ...until it has been for ten seconds.
    assert!(waits(rates.charge(100, 10, now), ms(1000)));
    now += ms(1000);
    assert_eq!(rates.charge(100, 10, now), Verdict::Flood);
    // One that pauses long enough to need no wait starts afresh.
    let mut rates = ConnectionRates::new(&config, start);
    assert!(waits(rates.charge(600, 10, start), ms(1000)));
    assert_eq!(rates.charge(1, 10, start + ms(1100)), Verdict::Pass);
    assert!(waits(rates.charge(600, 10, start + ms(1100)), ms(5910)));
    // A single message that would keep it waiting beyond the grace is a flood at once.
    let mut rates = ConnectionRates::new(&config, start);
    assert_eq!(rates.charge(2000, 10, start), Verdict::Flood);
}

#[test]
fn bytes_are_charged_and_the_largest_message_always_fits_a_burst() {
    let mut config = config();
    config.changes_per_second = 0;
    config.bytes_per_second = 1000;
    config.max_message_bytes = 1 << 20;
    let start = Instant::now();
    let mut rates = ConnectionRates::new(&config, start);
    assert_eq!(rates.charge(1, 1 << 20, start), Verdict::Pass, "the burst holds one largest message");
    assert!(waits(rates.charge(1, 1000, start), ms(1000)));
}

#[test]
fn presence_beyond_its_rate_waits_for_a_token() {
    let mut config = config();
    config.presence_per_second = 4;
    let start = Instant::now();
    let mut rates = ConnectionRates::new(&config, start);
    for _ in 0..4 {
        assert_eq!(rates.presence(start), Ok(()));
    }
    assert!(rates.presence(start).is_err_and(|wait| about(wait, ms(250))));
    assert_eq!(rates.presence(start + ms(250)), Ok(()));
    config.presence_per_second = 0;
    let mut unlimited = ConnectionRates::new(&config, start);
    assert!((0..1000).all(|_| unlimited.presence(start).is_ok()));
}

#[test]
fn an_address_holds_at_most_its_connections() {
    let mut config = config();
    config.max_connections_per_address = 2;
    let limits = AddressLimits::new(&config);
    let (a, b) = (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
    let first = limits.admit(a).unwrap();
    let _second = limits.admit(a).unwrap();
    assert!(limits.admit(a).is_none());
    assert!(limits.admit(b).is_some(), "another address has its own count");
    drop(first);
    assert_eq!(limits.connections(a), 1);
    assert!(limits.admit(a).is_some());
    config.max_connections_per_address = 0;
    let unlimited = AddressLimits::new(&config);
    let permits: Vec<_> = (0..1000).map(|_| unlimited.admit(a).unwrap()).collect();
    assert_eq!(unlimited.connections(a), 1000);
    drop(permits);
    assert_eq!(unlimited.connections(a), 0);
}

#[test]
fn new_documents_per_address_refill_over_a_minute_and_survive_disconnects() {
    let mut config = config();
    config.new_documents_per_minute = 3;
    let limits = AddressLimits::new(&config);
    let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let start = Instant::now();
    let permit = limits.admit(a).unwrap();
    assert!((0..3).all(|_| limits.allow_new_document(a, start)));
    assert!(!limits.allow_new_document(a, start));
    // Leaving and coming back does not reset the count.
    drop(permit);
    let _permit = limits.admit(a).unwrap();
    assert!(!limits.allow_new_document(a, start + Duration::from_secs(1)));
    // One document's worth refills in 20 s.
    assert!(limits.allow_new_document(a, start + Duration::from_secs(21)));
    assert!(limits.allow_new_document(IpAddr::V4(Ipv4Addr::LOCALHOST), start), "other addresses are unaffected");
    config.new_documents_per_minute = 0;
    let unlimited = AddressLimits::new(&config);
    assert!((0..1000).all(|_| unlimited.allow_new_document(a, start)));
}
