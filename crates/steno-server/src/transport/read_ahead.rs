//! Reading ahead: the client's [`Read`]s in, the same `Read`s out to the session in order, while the socket goes on being read (so its pings are answered) up to a byte budget.
//!
//! A session that waits for room in the worker queue (back-pressure) stops
//! taking input. Reading the socket only when the session asks would then
//! leave the client's WebSocket pings unanswered, and a client with a ping
//! timeout (20 s is common) would drop a connection that is merely slow.
//! So a task reads on and holds what it read: at most
//! `session.read_ahead_bytes` (each message counted with a small overhead,
//! so a flood of tiny ones is bounded too). When that is full it stops
//! reading and TCP pushes back on the client, as before; the pipeline's own
//! limit (`session.max_queued_audio_s`, `audio_overflow`) is unchanged.

use std::collections::VecDeque;

use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;

use super::socket::Read;

/// Counted for every held message besides its bytes.
const MESSAGE_OVERHEAD_BYTES: usize = 64;

fn held_size(read: &Read) -> usize {
    MESSAGE_OVERHEAD_BYTES
        + match read {
            Read::Binary(b) => b.len(),
            Read::Text(t) => t.len(),
            Read::Closed | Read::Broken { .. } => 0,
        }
}

/// `reads` as a stream read ahead by a task, holding up to `budget_bytes`.
/// The task ends when `reads` ends and all is handed on, or when the
/// returned stream is dropped.
pub fn read_ahead<St>(reads: St, budget_bytes: usize) -> impl Stream<Item = Read> + Unpin
where
    St: Stream<Item = Read> + Unpin + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel(1);
    tokio::spawn(pump(reads, tx, budget_bytes));
    Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

async fn pump<St>(mut reads: St, tx: mpsc::Sender<Read>, budget_bytes: usize)
where
    St: Stream<Item = Read> + Unpin,
{
    let mut held: VecDeque<Read> = VecDeque::new();
    let mut held_bytes = 0;
    let mut ended = false;
    loop {
        if ended && held.is_empty() {
            return;
        }
        tokio::select! {
            biased;
            permit = tx.reserve(), if !held.is_empty() => {
                let Ok(permit) = permit else { return };
                let read = held.pop_front().expect("not empty");
                held_bytes -= held_size(&read);
                permit.send(read);
            }
            _ = tx.closed() => return,
            next = reads.next(), if !ended && held_bytes < budget_bytes => match next {
                Some(read) => {
                    held_bytes += held_size(&read);
                    held.push_back(read);
                }
                None => ended = true,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;

    use super::*;

    fn binary(n: usize) -> Read {
        Read::Binary(Bytes::from(vec![0u8; n]))
    }

    /// Counts how many items the source has given.
    fn counted(items: Vec<Read>, taken: Arc<AtomicUsize>) -> impl Stream<Item = Read> + Unpin {
        futures_util::stream::iter(items).inspect(move |_| {
            taken.fetch_add(1, Ordering::SeqCst);
        })
    }

    #[tokio::test]
    async fn reads_on_while_the_session_waits_up_to_the_budget() {
        let taken = Arc::new(AtomicUsize::new(0));
        let source = counted((0..100).map(|_| binary(936)).collect(), taken.clone());
        // 10 messages of 936 + 64 bytes fit a budget of 10,000.
        let mut out = read_ahead(source, 10_000);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        // Held: 10 under the budget, plus one in the channel.
        let read = taken.load(Ordering::SeqCst);
        assert!((10..=12).contains(&read), "read {read} ahead");
        // Everything comes out, in order, when the session takes it.
        let mut n = 0;
        while let Some(r) = out.next().await {
            assert!(matches!(r, Read::Binary(b) if b.len() == 936));
            n += 1;
        }
        assert_eq!(n, 100);
    }

    #[tokio::test]
    async fn the_end_and_a_close_come_through_after_what_was_held() {
        let items = vec![binary(10), Read::Text("end".into()), Read::Closed];
        let out: Vec<Read> = read_ahead(futures_util::stream::iter(items), 1 << 20)
            .collect()
            .await;
        assert_eq!(out.len(), 3);
        assert!(matches!(out[2], Read::Closed));
    }

    #[tokio::test]
    async fn dropping_the_reader_stops_the_task() {
        /// Sets its flag when dropped: with the source, when the task ends.
        struct Dropped(Arc<AtomicUsize>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                self.0.store(1, Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(AtomicUsize::new(0));
        let guard = Dropped(dropped.clone());
        let source = futures_util::stream::pending::<Read>().inspect(move |_| {
            let _ = &guard;
        });
        let out = read_ahead(source, 1 << 20);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(dropped.load(Ordering::SeqCst), 0, "reading while wanted");
        drop(out);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(dropped.load(Ordering::SeqCst), 1, "the task went on");
    }
}
