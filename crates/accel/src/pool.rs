//! A small persistent worker pool for the parallel GEMM, in which the calling thread never waits for a worker
//! that has not started yet.
//!
//! Why not `std::thread::scope` or a rayon scope: both must join every thread or job they started, so when a
//! worker's vCPU is slow to wake (measured on the reference VM: a spawn and join costs 87 µs at the median and
//! 227 µs at p90, a wake-up of a parked thread 10 µs at the median and up to 5 ms), the caller, which may
//! already have done all the work itself, still waits. Here a job is *offered*: workers that arrive while it
//! is open join in and take chunks from the caller's queue; when the caller has finished, it closes the offer,
//! waits only for workers that actually joined (they are at most one chunk behind), and returns.
//!
//! Soundness rests on one invariant, kept under the `state` mutex: a worker dereferences the job pointer only
//! after registering as a participant while the job is open, and the caller does not return (or unwind) before
//! it has closed the job and seen the participant count drop to zero.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// How long an idle worker spins, watching for the next offer, before it blocks: back-to-back products (a
/// benchmark loop, the layers of a model) then find it awake. Short, so an idle process does not burn a core.
const WORKER_SPIN: Duration = Duration::from_micros(100);

/// How long the caller spins for joined workers' last chunks before it blocks.
const CALLER_SPIN: Duration = Duration::from_millis(2);

/// A job's entry point with its lifetime erased (see the module docs for why it is never used past the job).
#[derive(Clone, Copy)]
struct JobRef(*const (dyn Fn() + Sync));

// SAFETY: the pointee is `Sync` (shared calls from several threads are fine) and is only reached under the
// participant protocol described in the module docs, which keeps it alive while any thread uses it.
unsafe impl Send for JobRef {}

struct State {
    /// Bumped for every offer, so a worker can tell a new offer from one it has already served.
    generation: u64,
    /// The open offer, if any.
    job: Option<JobRef>,
    /// Workers currently running the open (or just closed) job.
    participants: usize,
    /// A worker's job panicked; the payload is re-raised on the caller.
    panic: Option<Box<dyn std::any::Any + Send>>,
}

struct Shared {
    state: Mutex<State>,
    /// Mirrors `State::generation` for lock-free spinning.
    generation: AtomicU64,
    offered: Condvar,
    drained: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `workers` threads that join offered jobs. Dropping the pool does not stop them (pools live for the process).
pub(crate) struct Pool {
    shared: Arc<Shared>,
    /// Held by the one caller offering a job; a second concurrent caller runs its product alone.
    busy: Mutex<()>,
    workers: usize,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// Starts `workers` threads.
    pub(crate) fn new(workers: usize) -> std::io::Result<Pool> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                generation: 0,
                job: None,
                participants: 0,
                panic: None,
            }),
            generation: AtomicU64::new(0),
            offered: Condvar::new(),
            drained: Condvar::new(),
        });
        for index in 0..workers {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("accel-gemm-{index}"))
                .spawn(move || worker_loop(&shared))?;
        }
        Ok(Pool {
            shared,
            busy: Mutex::new(()),
            workers,
        })
    }

    /// Runs `job` on the calling thread and on every worker that wakes while it runs; returns when the caller's
    /// call has returned and every worker that joined has finished. `job` must hand out work from a shared queue
    /// (each call returns once the queue is empty), so whoever arrives late finds nothing left and a missing
    /// worker only costs parallelism. A panic in any call is re-raised here.
    pub(crate) fn run(&self, job: &(dyn Fn() + Sync)) {
        let _busy = match self.busy.try_lock() {
            Ok(guard) => guard,
            // A previous job panicked while offered; the pool itself is consistent (see `Close`).
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                // Another thread is using the pool: run alone rather than queue behind it.
                job();
                return;
            }
        };
        // SAFETY (lifetime erasure): `Close` below clears the pointer and waits until no worker uses it before
        // this function returns or unwinds, so it never outlives `job`.
        let erased: *const (dyn Fn() + Sync) =
            unsafe { std::mem::transmute::<&(dyn Fn() + Sync), &'static (dyn Fn() + Sync)>(job) };
        {
            let mut state = self.shared.lock();
            state.generation += 1;
            state.job = Some(JobRef(erased));
            self.shared
                .generation
                .store(state.generation, Ordering::Release);
        }
        self.shared.offered.notify_all();
        let close = Close {
            shared: &self.shared,
        };
        job();
        let panic = close.finish();
        if let Some(payload) = panic {
            resume_unwind(payload);
        }
    }
}

/// Closes the offer and waits for the participants, on the normal path and when the caller's own call unwinds.
struct Close<'a> {
    shared: &'a Shared,
}

impl Close<'_> {
    fn close_and_wait(&self) -> Option<Box<dyn std::any::Any + Send>> {
        let mut state = self.shared.lock();
        state.job = None;
        if state.participants > 0 {
            // They are finishing their last chunk: spin a little (releasing the lock) before sleeping.
            drop(state);
            let started = Instant::now();
            loop {
                state = self.shared.lock();
                if state.participants == 0 || started.elapsed() >= CALLER_SPIN {
                    break;
                }
                drop(state);
                std::hint::spin_loop();
            }
            while state.participants > 0 {
                state = self
                    .shared
                    .drained
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
        state.panic.take()
    }

    fn finish(self) -> Option<Box<dyn std::any::Any + Send>> {
        let panic = self.close_and_wait();
        std::mem::forget(self);
        panic
    }
}

impl Drop for Close<'_> {
    fn drop(&mut self) {
        // Only reached when the caller's call panicked: keep the invariant, then let the unwind continue.
        let _ = self.close_and_wait();
    }
}

fn worker_loop(shared: &Shared) {
    let mut served = 0u64;
    loop {
        // Spin briefly for a new offer, then block.
        let started = Instant::now();
        while shared.generation.load(Ordering::Acquire) == served && started.elapsed() < WORKER_SPIN
        {
            std::hint::spin_loop();
        }
        let mut state = shared.lock();
        while state.generation == served {
            state = shared
                .offered
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        served = state.generation;
        let Some(job) = state.job else {
            // The offer closed before this worker woke: nothing to do.
            continue;
        };
        state.participants += 1;
        drop(state);
        // SAFETY: registered as a participant while the job was open, so the caller keeps it alive until this
        // worker decrements the count below.
        let outcome = catch_unwind(AssertUnwindSafe(|| unsafe { (*job.0)() }));
        let mut state = shared.lock();
        if let Err(payload) = outcome {
            state.panic.get_or_insert(payload);
        }
        state.participants -= 1;
        if state.participants == 0 {
            shared.drained.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Pool;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    #[test]
    fn every_item_is_processed_exactly_once() {
        let pool = Pool::new(3).unwrap();
        for round in 0..200 {
            let items = round % 17;
            let queue = Mutex::new(0..items);
            let seen: Vec<AtomicUsize> = (0..items).map(|_| AtomicUsize::new(0)).collect();
            pool.run(&|| loop {
                let next = queue.lock().unwrap().next();
                let Some(item) = next else { break };
                seen[item].fetch_add(1, Ordering::Relaxed);
            });
            assert!(seen.iter().all(|count| count.load(Ordering::Relaxed) == 1));
        }
    }

    #[test]
    fn a_panicking_job_is_re_raised_and_the_pool_still_works() {
        let pool = Pool::new(1).unwrap();
        let calls = AtomicUsize::new(0);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.run(&|| {
                if calls.fetch_add(1, Ordering::Relaxed) == 0 {
                    panic!("job panicked");
                }
            })
        }));
        assert!(outcome.is_err());
        let done = AtomicUsize::new(0);
        pool.run(&|| {
            done.fetch_add(1, Ordering::Relaxed);
        });
        assert!(done.load(Ordering::Relaxed) >= 1);
    }

    #[test]
    fn concurrent_callers_both_complete() {
        let pool = Pool::new(1).unwrap();
        let total = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..50 {
                        let queue = Mutex::new(0..8);
                        pool.run(&|| {
                            while queue.lock().unwrap().next().is_some() {
                                total.fetch_add(1, Ordering::Relaxed);
                            }
                        });
                    }
                });
            }
        });
        assert_eq!(total.load(Ordering::Relaxed), 4 * 50 * 8);
    }
}
