//! Injectable time source, so `Wait` states and Retry intervals can be real, scaled
//! or skipped.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// A boxed, sendable future (what trait objects here return).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Time as the engine sees it.
pub trait Clock: Send + Sync {
    /// The current time (used for `$$` timestamps, `Wait` `Timestamp` and history).
    fn now(&self) -> SystemTime;
    /// Waits for `d` of this clock's time (`Wait` states, Retry intervals).
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()>;
    /// Completes when a Task's `TimeoutSeconds` of `d` has run out. Defaults to
    /// [`Clock::sleep`]; a virtual clock never lets it fire, since no virtual time
    /// passes while a task handler runs.
    fn timeout(&self, d: Duration) -> BoxFuture<'static, ()> {
        self.sleep(d)
    }
}

/// Real time through tokio.
#[derive(Debug, Default, Clone, Copy)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// Real time sped up (or slowed down): a `Wait` of `d` sleeps `d * factor`, and
/// `now()` runs `1 / factor` times as fast as the wall clock from creation.
#[derive(Debug)]
pub struct ScaledClock {
    factor: f64,
    start_wall: SystemTime,
    start: Instant,
}

impl ScaledClock {
    /// `factor` 0.01 makes a 100 s Wait take one second. Must be > 0.
    pub fn new(factor: f64) -> ScaledClock {
        assert!(factor > 0.0, "use InstantClock for a factor of 0");
        ScaledClock {
            factor,
            start_wall: SystemTime::now(),
            start: Instant::now(),
        }
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> SystemTime {
        self.start_wall + self.start.elapsed().div_f64(self.factor)
    }
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(d.mul_f64(self.factor)))
    }
}

/// Virtual time: sleeps return at once and move this clock forward instead, so a
/// day-long `Wait` costs nothing in tests. Task timeouts never fire (no virtual
/// time passes while a handler runs).
#[derive(Debug)]
pub struct InstantClock {
    now: Mutex<SystemTime>,
}

impl InstantClock {
    /// Starts at the current wall-clock time.
    pub fn new() -> InstantClock {
        InstantClock::starting_at(SystemTime::now())
    }
    /// Starts at a given time (for reproducible timestamps).
    pub fn starting_at(t: SystemTime) -> InstantClock {
        InstantClock { now: Mutex::new(t) }
    }
}

impl Default for InstantClock {
    fn default() -> Self {
        InstantClock::new()
    }
}

impl Clock for InstantClock {
    fn now(&self) -> SystemTime {
        *self.now.lock().expect("clock lock")
    }
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        *self.now.lock().expect("clock lock") += d;
        // Still yield, so a cancellation or a sibling branch gets a chance to run.
        Box::pin(tokio::task::yield_now())
    }
    fn timeout(&self, _d: Duration) -> BoxFuture<'static, ()> {
        Box::pin(std::future::pending())
    }
}
