//! How the async App runs `on_message`: on its own task one message at a
//! time, or up to N at once on tasks, in order per key if asked.
//!
//! As in the blocking App's pool ([`crate::app`]), a message leaves the
//! connection's [`Buffer`](crate::buffer::Buffer) only when a worker can
//! take it (a permit of N, or a lane with one free slot), so the backlog
//! stays in the buffer, where the overflow policy and the stats apply,
//! never in an unbounded queue of the App's.
//!
//! - Without a key: each message runs on a task of its own, holding one of
//!   N permits; any free permit takes the next message.
//! - With a key: N lane tasks; messages with the same key always go to the
//!   same lane (by hash), so they are handled in arrival order, one at a
//!   time; messages without a key go round robin.

use super::{Context, Handlers};
use crate::app::workers::WorkerKeyFn;
use crate::buffer::Delivered;
use floodgate_proto::Message;
use std::hash::BuildHasher;
use std::sync::Arc;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

/// One message to handle, with the context of its connection.
type Job = (Context, Delivered);

/// How `on_message` is run.
pub(super) enum Dispatch {
    /// Awaited on the task that runs the App.
    Inline(Arc<Handlers>),
    /// Up to N at once, each on a task of its own.
    Pool {
        handlers: Arc<Handlers>,
        permits: Arc<Semaphore>,
        size: u32,
    },
    /// N lanes, one per key hash.
    Lanes(Lanes),
}

pub(super) struct Lanes {
    senders: Vec<mpsc::Sender<Job>>,
    tasks: Vec<JoinHandle<()>>,
    key: WorkerKeyFn,
    hasher: std::collections::hash_map::RandomState,
    next: usize,
}

impl Dispatch {
    /// # Panics
    ///
    /// With workers, outside a tokio runtime (lanes are spawned at once).
    pub(super) fn new(handlers: Arc<Handlers>, workers: usize, key: Option<WorkerKeyFn>) -> Self {
        match (workers, key) {
            (0, _) => Dispatch::Inline(handlers),
            (n, None) => {
                let size = u32::try_from(n.min(Semaphore::MAX_PERMITS)).unwrap_or(u32::MAX);
                Dispatch::Pool {
                    handlers,
                    permits: Arc::new(Semaphore::new(size as usize)),
                    size,
                }
            }
            (n, Some(key)) => {
                let mut senders = Vec::with_capacity(n);
                let mut tasks = Vec::with_capacity(n);
                for _ in 0..n {
                    let (tx, mut rx) = mpsc::channel::<Job>(1);
                    let handlers = handlers.clone();
                    senders.push(tx);
                    tasks.push(::tokio::spawn(async move {
                        while let Some((context, message)) = rx.recv().await {
                            handlers.message(&context, message).await;
                        }
                    }));
                }
                Dispatch::Lanes(Lanes {
                    senders,
                    tasks,
                    key,
                    hasher: Default::default(),
                    next: 0,
                })
            }
        }
    }

    /// Hands one message to its handler: awaits it inline, or waits until
    /// a worker (the lane of its key) can take it.
    pub(super) async fn dispatch(&mut self, context: &Context, message: Delivered) {
        match self {
            Dispatch::Inline(handlers) => handlers.message(context, message).await,
            Dispatch::Pool {
                handlers, permits, ..
            } => {
                // The semaphore is never closed: acquiring cannot fail.
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let (handlers, context) = (handlers.clone(), context.clone());
                ::tokio::spawn(async move {
                    handlers.message(&context, message).await;
                    drop(permit);
                });
            }
            Dispatch::Lanes(lanes) => {
                let lane = lanes.lane_of(message.message());
                // A lane task only stops when its sender is dropped, in
                // `finish`: the send cannot fail while we hold it.
                let _ = lanes.senders[lane].send((context.clone(), message)).await;
            }
        }
    }

    /// Waits for the work in flight to finish and stops the workers.
    pub(super) async fn finish(self) {
        match self {
            Dispatch::Inline(_) => {}
            Dispatch::Pool { permits, size, .. } => {
                // Every permit back means every handler task is done.
                let _ = permits.acquire_many(size).await;
            }
            Dispatch::Lanes(lanes) => {
                drop(lanes.senders);
                for task in lanes.tasks {
                    let _ = task.await;
                }
            }
        }
    }
}

impl Lanes {
    fn lane_of(&mut self, message: &Message) -> usize {
        match (self.key)(message) {
            Some(key) => (self.hasher.hash_one(&key) % self.senders.len() as u64) as usize,
            None => {
                self.next = (self.next + 1) % self.senders.len();
                self.next
            }
        }
    }
}
