//! A bounded, single-threaded channel between the nodes of one pipeline instance.
//!
//! Nodes of an instance share one thread, so the channel needs no atomics: an
//! `Rc<RefCell<..>>` with wakers. A full channel makes `send` wait (backpressure); it
//! never grows past its capacity.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

struct Shared<T> {
    queue: VecDeque<T>,
    capacity: usize,
    receiver_waker: Option<Waker>,
    sender_wakers: Vec<Waker>,
    senders: usize,
    receiver_alive: bool,
}

/// Creates a channel holding at most `capacity` messages (at least 1).
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let capacity = capacity.max(1);
    let shared = Rc::new(RefCell::new(Shared {
        queue: VecDeque::with_capacity(capacity),
        capacity,
        receiver_waker: None,
        sender_wakers: Vec::new(),
        senders: 1,
        receiver_alive: true,
    }));
    (
        Sender {
            shared: Rc::clone(&shared),
        },
        Receiver { shared },
    )
}

/// Why [`Sender::try_send`] did not send.
#[derive(Debug, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The channel is full: the message is handed back.
    Full(T),
    /// The receiver is gone: the message is handed back.
    Closed(T),
}

/// The sending end; clone it for several upstream nodes.
pub struct Sender<T> {
    shared: Rc<RefCell<Shared<T>>>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.borrow_mut().senders += 1;
        Sender {
            shared: Rc::clone(&self.shared),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut shared = self.shared.borrow_mut();
        shared.senders -= 1;
        if shared.senders == 0
            && let Some(w) = shared.receiver_waker.take()
        {
            w.wake();
        }
    }
}

impl<T> Sender<T> {
    /// Sends without waiting.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let mut shared = self.shared.borrow_mut();
        if !shared.receiver_alive {
            return Err(TrySendError::Closed(value));
        }
        if shared.queue.len() >= shared.capacity {
            return Err(TrySendError::Full(value));
        }
        shared.queue.push_back(value);
        if let Some(w) = shared.receiver_waker.take() {
            w.wake();
        }
        Ok(())
    }

    /// Sends, waiting while the channel is full. Hands the value back if the receiver
    /// is gone.
    pub async fn send(&self, value: T) -> Result<(), T> {
        let mut value = Some(value);
        poll_fn(|cx| {
            let v = value.take().expect("polled after completion");
            match self.try_send(v) {
                Ok(()) => Poll::Ready(Ok(())),
                Err(TrySendError::Closed(v)) => Poll::Ready(Err(v)),
                Err(TrySendError::Full(v)) => {
                    value = Some(v);
                    self.shared
                        .borrow_mut()
                        .sender_wakers
                        .push(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Messages waiting in the channel.
    pub fn len(&self) -> usize {
        self.shared.borrow().queue.len()
    }

    /// Whether no message is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a `try_send` would find the channel full.
    pub fn is_full(&self) -> bool {
        let shared = self.shared.borrow();
        shared.queue.len() >= shared.capacity
    }

    /// The channel's capacity.
    pub fn capacity(&self) -> usize {
        self.shared.borrow().capacity
    }
}

/// Watches a channel's depth without keeping it open (unlike a [`Sender`]).
pub struct Observer<T> {
    shared: std::rc::Weak<RefCell<Shared<T>>>,
}

impl<T> Observer<T> {
    /// Messages waiting (0 once the channel is gone).
    pub fn len(&self) -> usize {
        self.shared.upgrade().map_or(0, |s| s.borrow().queue.len())
    }

    /// Whether no message is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Sender<T> {
    /// An observer of this channel's depth.
    pub fn observer(&self) -> Observer<T> {
        Observer {
            shared: Rc::downgrade(&self.shared),
        }
    }
}

/// The receiving end.
pub struct Receiver<T> {
    shared: Rc<RefCell<Shared<T>>>,
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut shared = self.shared.borrow_mut();
        shared.receiver_alive = false;
        shared.queue.clear();
        for w in shared.sender_wakers.drain(..) {
            w.wake();
        }
    }
}

impl<T> Receiver<T> {
    /// A message if one is waiting; `Ready(None)` once every sender is gone and the
    /// channel is empty.
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut shared = self.shared.borrow_mut();
        if let Some(v) = shared.queue.pop_front() {
            // Room for one more: let the waiting senders try again.
            for w in shared.sender_wakers.drain(..) {
                w.wake();
            }
            return Poll::Ready(Some(v));
        }
        if shared.senders == 0 {
            return Poll::Ready(None);
        }
        shared.receiver_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Waits for a message; `None` once every sender is gone and the channel is empty.
    pub async fn recv(&self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// A message if one is waiting.
    pub fn try_recv(&self) -> Option<T> {
        let mut shared = self.shared.borrow_mut();
        let v = shared.queue.pop_front();
        if v.is_some() {
            for w in shared.sender_wakers.drain(..) {
                w.wake();
            }
        }
        v
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.shared.borrow().queue.len()
    }

    /// Whether no message is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn a_full_channel_refuses_try_send_and_hands_the_value_back() {
        let (tx, rx) = channel(2);
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
        assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
        assert_eq!(rx.try_recv(), Some(1));
        tx.try_send(3).unwrap();
        assert_eq!(rx.len(), 2);
    }

    #[test]
    fn send_waits_for_room_and_recv_ends_when_senders_are_gone() {
        let (tx, rx) = channel(1);
        let received = block_on(async {
            let local = tokio::task::LocalSet::new();
            local
                .run_until(async move {
                    let producer = tokio::task::spawn_local(async move {
                        for i in 0..100 {
                            tx.send(i).await.unwrap();
                        }
                    });
                    let mut got = Vec::new();
                    while let Some(v) = rx.recv().await {
                        got.push(v);
                    }
                    producer.await.unwrap();
                    got
                })
                .await
        });
        assert_eq!(received, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn sending_to_a_dropped_receiver_fails() {
        let (tx, rx) = channel(1);
        drop(rx);
        assert_eq!(tx.try_send(5), Err(TrySendError::Closed(5)));
        assert_eq!(block_on(tx.send(6)), Err(6));
    }
}
