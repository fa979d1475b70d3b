//! A control process that finds a region a previous one left: the sessions it inherits do not
//! cost it capacity, and they are freed on the clock it is given.

mod common;

use common::*;
use control::clock::ManualClock;
use control::daemon::{Control, ControlOptions};
use proto::constants::REJECT_AFTER_TIME;
use proto::keys::PrivateKey;
use rand_core::OsRng;
use std::time::Duration;

/// Every session slot holds a session of the previous process: a new handshake still gets a
/// slot (the oldest inherited one is taken back), instead of being installed nowhere.
#[test]
fn inherited_sessions_do_not_take_capacity_away() {
    let (a, b) = (
        PrivateKey::generate(&mut OsRng),
        PrivateKey::generate(&mut OsRng),
    );
    let mut gw = gateway("inherit-full", &[a.public_key(), b.public_key()], 4);
    gw.options.max_sessions = 2;
    // The region is sized from the options when first made: make it again with 2 sessions.
    let _ = std::fs::remove_file(&gw.region);
    gw.control = Control::new(&gw.options).unwrap();
    let first = handshake(&mut gw, &a);
    let second = handshake(&mut gw, &b);
    assert_ne!(first, second);
    assert_eq!(live_sessions(&gw).len(), 2, "every slot is taken");
    gw.restart();
    let before = live_sessions(&gw);
    assert_eq!(
        before.len(),
        2,
        "the previous process's sessions stay for the workers"
    );
    let slot = handshake(&mut gw, &a);
    let after = live_sessions(&gw);
    assert!(
        after.iter().any(|s| s.0 == slot && !before.contains(s)),
        "a new session was installed: {before:?} -> {after:?}"
    );
    assert_eq!(after.len(), 2);
}

/// Inherited sessions are freed once their keys are too old for the workers, on the clock
/// control is given: no test has to wait three minutes or scale control's time.
#[test]
fn inherited_sessions_expire_on_the_given_clock() {
    let a = PrivateKey::generate(&mut OsRng);
    let mut gw = gateway("inherit-expire", &[a.public_key()], 4);
    handshake(&mut gw, &a);
    let clock = ManualClock::new();
    let options = ControlOptions {
        metrics: None,
        ..gw.options.clone()
    };
    gw.control = Control::with(&options, Box::new(clock.clone()), Box::new(OsRng)).unwrap();
    gw.control.step();
    assert_eq!(live_sessions(&gw).len(), 1, "inherited, still usable");
    clock.advance(REJECT_AFTER_TIME - Duration::from_secs(1));
    gw.control.step();
    assert_eq!(live_sessions(&gw).len(), 1);
    clock.advance(Duration::from_secs(2));
    gw.control.step();
    assert!(
        live_sessions(&gw).is_empty(),
        "expired on the given clock and wiped"
    );
}
