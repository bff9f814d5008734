//! The worker pool of an [`App`](super::App): `on_message` runs on N
//! threads, fed from the connection's buffer.
//!
//! Work is handed over through channels of one slot per worker, so the
//! dispatcher takes a message from the buffer only when a worker is ready
//! for it: the backlog stays in the [`Buffer`](crate::buffer::Buffer),
//! where the overflow policy and the stats apply, never in an unbounded
//! queue of the pool's.
//!
//! With a key function, messages with the same key always go to the same
//! worker (by hash), so they are handled in arrival order, one at a time;
//! messages without a key go round robin. Without one, any free worker
//! takes the next message.

use super::{Context, Handlers};
use crate::buffer::{Delivered, Key};
use floodgate_proto::Message;
use std::hash::BuildHasher;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

pub(crate) type WorkerKeyFn = Arc<dyn Fn(&Message) -> Option<Key> + Send + Sync>;

/// One message to handle, with the context of its connection.
type Job = (Arc<Context>, Delivered);

/// How `on_message` is run.
pub(crate) enum Dispatch {
    /// On the thread that runs the App.
    Inline(Arc<Handlers>),
    /// On a pool of workers.
    Pool(Pool),
}

impl Dispatch {
    pub(crate) fn new(
        handlers: Arc<Handlers>,
        workers: usize,
        key: Option<WorkerKeyFn>,
    ) -> Dispatch {
        if workers == 0 {
            Dispatch::Inline(handlers)
        } else {
            Dispatch::Pool(Pool::start(handlers, workers, key))
        }
    }

    /// Hands one message to its handler; with a pool, waits until a
    /// worker (the one of its key) can take it.
    pub(crate) fn dispatch(&mut self, context: &Arc<Context>, message: Delivered) {
        match self {
            Dispatch::Inline(handlers) => handlers.message(context, &message),
            Dispatch::Pool(pool) => pool.dispatch(context, message),
        }
    }

    /// Lets in-flight work finish and stops the workers.
    pub(crate) fn finish(self) {
        if let Dispatch::Pool(pool) = self {
            pool.finish();
        }
    }
}

pub(crate) struct Pool {
    /// One lane per worker (keyed), or one shared lane.
    lanes: Vec<SyncSender<Job>>,
    key: Option<WorkerKeyFn>,
    hasher: std::collections::hash_map::RandomState,
    next: usize,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    fn start(handlers: Arc<Handlers>, workers: usize, key: Option<WorkerKeyFn>) -> Pool {
        let mut threads = Vec::with_capacity(workers);
        let mut lanes = Vec::new();
        let spawn = |name: String, work: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name)
                .spawn(work)
                .expect("spawn a worker thread")
        };
        if key.is_some() {
            for i in 0..workers {
                let (tx, rx) = sync_channel::<Job>(1);
                lanes.push(tx);
                let handlers = handlers.clone();
                threads.push(spawn(
                    format!("floodgate-worker-{i}"),
                    Box::new(move || {
                        for (context, message) in rx {
                            handlers.message(&context, &message);
                        }
                    }),
                ));
            }
        } else {
            let (tx, rx) = sync_channel::<Job>(workers);
            lanes.push(tx);
            let rx: Arc<Mutex<Receiver<Job>>> = Arc::new(Mutex::new(rx));
            for i in 0..workers {
                let (handlers, rx) = (handlers.clone(), rx.clone());
                threads.push(spawn(
                    format!("floodgate-worker-{i}"),
                    Box::new(move || loop {
                        let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        match job {
                            Ok((context, message)) => handlers.message(&context, &message),
                            Err(_) => return,
                        }
                    }),
                ));
            }
        }
        Pool {
            lanes,
            key,
            hasher: Default::default(),
            next: 0,
            threads,
        }
    }

    fn lane_of(&mut self, message: &Message) -> usize {
        let Some(key_fn) = &self.key else { return 0 };
        match key_fn(message) {
            Some(key) => (self.hasher.hash_one(&key) % self.lanes.len() as u64) as usize,
            None => {
                self.next = (self.next + 1) % self.lanes.len();
                self.next
            }
        }
    }

    fn dispatch(&mut self, context: &Arc<Context>, message: Delivered) {
        let lane = self.lane_of(&message);
        // A worker only stops when the pool is finished, which needs
        // `&mut self`: the send cannot fail while we hold it.
        let _ = self.lanes[lane].send((context.clone(), message));
    }

    fn finish(self) {
        drop(self.lanes);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}
