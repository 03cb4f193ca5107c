//! Several instances behind a real HAProxy, on loopback, with the real model: `deploy/local-cluster.sh` and `deploy/haproxy/haproxy.cfg` as a user runs them.
//!
//! Sessions spread by capacity and a full cluster refuses in steno's words;
//! instances of different sizes fill in proportion; SIGTERM to one instance
//! drains it while the others take new sessions; SIGKILL is routed around
//! and a restarted instance takes sessions again; a file job is submitted,
//! followed and read through the balancer; a rolling restart under a steady
//! stream of sessions loses none. Prints the figures docs/scaling.md quotes.
//! Needs haproxy (scripts/install-deps.sh). One cluster at a time.

mod common;
#[path = "cluster/harness.rs"]
mod harness;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::speech::{espeak, silence};
use common::wer::wer;
use common::*;
use harness::{Cluster, time_until};
use steno_client::RetryPolicy;
use steno_protocol::ErrorCode;
use steno_testkit::http::{Part, post_multipart};

const SENTENCES: [&str; 3] = [
    "Please call me back tomorrow morning at the office.",
    "Good morning, this is a test of the speech server.",
    "Shutting down politely means finishing this sentence first.",
];
const MAX_WER: f64 = 0.25;

/// One cluster at a time: three instances and HAProxy are a lot for two cores.
async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// A cluster whose every instance HAProxy has checked up, with its agent's
/// weight (its capacity) in place: sessions opened at once then spread as
/// the config says, even on a busy machine where a first check was slow.
async fn up(instances: usize, max_sessions: &str) -> Cluster {
    let sizes = max_sessions.to_string();
    let cluster = tokio::task::spawn_blocking(move || Cluster::up(instances, &sizes))
        .await
        .unwrap();
    let capacity = |i: usize| -> u32 {
        let sizes: Vec<u32> = max_sessions
            .split(',')
            .map(|s| s.parse().unwrap())
            .collect();
        if sizes.len() == 1 {
            sizes[0]
        } else {
            sizes[i - 1]
        }
    };
    let settled = time_until(Duration::from_secs(20), || async {
        let servers = cluster.servers("live").await;
        (1..=instances).all(|i| {
            servers
                .get(&format!("steno{i}"))
                .is_some_and(|s| s.up && s.weight == capacity(i))
        })
    })
    .await;
    assert!(
        settled.is_some(),
        "HAProxy never saw every instance up with its weight: {:?}\n{}",
        cluster.servers("live").await,
        cluster.logs()
    );
    cluster
}

fn listen_url(addr: SocketAddr) -> String {
    format!("ws://{addr}/v1/listen?partials=false")
}

/// A sentence with a little silence around it, as 20 ms Opus packets.
fn spoken(sentence: &str) -> Vec<Vec<u8>> {
    let mut audio = silence(300);
    audio.extend(espeak(sentence));
    audio.extend(silence(1000));
    opus_packets(&audio, 20)
}

/// Streams `sentence` in real time on an open session, ends it and reads
/// until the close.
async fn say(mut session: Session, sentence: &str) -> Transcript {
    send_all(&mut session, &spoken(sentence), Duration::from_millis(20)).await;
    let _ = session.end().await;
    collect(&mut session, Duration::from_secs(60)).await
}

/// Like [`say`], for a session that may be cut: the transport error
/// instead of a panic.
async fn say_until_cut(
    mut session: Session,
    sentence: &str,
) -> Result<Transcript, steno_client::ClientError> {
    send_all(&mut session, &spoken(sentence), Duration::from_millis(20)).await;
    let _ = session.end().await;
    session.collect(Duration::from_secs(60)).await
}

/// What a session that must have gone well shows: its sentence, no error.
fn check_heard(t: &Transcript, sentence: &str, closes: &[u16]) {
    let text = t.final_text();
    assert!(
        wer(sentence, &text) <= MAX_WER,
        "heard {text:?} for {sentence:?}: {:?}",
        t.messages
    );
    let close = t.close_code().unwrap_or(0);
    assert!(closes.contains(&close), "closed {close}: {:?}", t.messages);
}

async fn active(addr: SocketAddr) -> f64 {
    metric(addr, "steno_sessions_active").await
}

/// Each instance's open sessions, by its own /metrics.
async fn spread(cluster: &Cluster) -> Vec<f64> {
    let mut per_instance = Vec::new();
    for i in 1..=cluster.instances {
        per_instance.push(active(cluster.instance(i)).await);
    }
    per_instance
}

/// How the sessions of a rolling restart ended.
#[derive(Default)]
struct RollCounts {
    /// Their sentence, then 1000.
    ok: AtomicU32,
    /// On an instance being drained: the final of their sentence, then 1001.
    drained: AtomicU32,
    /// On an instance that began its drain before they spoke: closed with
    /// `shutting_down` and 1001, nothing said lost; the client opens another.
    moved: AtomicU32,
    failed: std::sync::Mutex<Vec<String>>,
}

impl RollCounts {
    fn count(&self, t: &Transcript, sentence: &str) {
        let heard = wer(sentence, &t.final_text()) <= MAX_WER;
        let errors = t.errors();
        let counter = match t.close_code() {
            Some(1000) if heard && errors.is_empty() => &self.ok,
            Some(1001) if heard => &self.drained,
            Some(1001) if t.finals().is_empty() && errors == ["shutting_down"] => &self.moved,
            _ => return self.fail(format!("a session went wrong: {:?}", t.messages)),
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }

    fn fail(&self, what: String) {
        println!("{what}");
        self.failed.lock().unwrap().push(what);
    }
}

/// The ids of the sessions open on one instance.
async fn session_ids(addr: SocketAddr) -> Vec<String> {
    let (_, listed) = http_get(addr, "/v1/sessions").await.unwrap();
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    listed["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

/// `n` sessions opened at once through the balancer.
async fn open_many(lb: SocketAddr, n: usize) -> Vec<Session> {
    let connects = (0..n).map(|_| async move { Connector::new(listen_url(lb)).connect().await });
    futures_util::future::join_all(connects)
        .await
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("a session through the balancer: {e}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_spread_four_by_four_and_the_thirteenth_hears_over_capacity() {
    let _one = one_at_a_time().await;
    let cluster = up(3, "4").await;
    let lb = cluster.lb();
    let sessions = open_many(lb, 12).await;
    let spread = spread(&cluster).await;
    println!("12 sessions through the balancer: {spread:?} per instance");
    assert_eq!(spread, vec![4.0, 4.0, 4.0], "{}", cluster.logs());

    // The 13th, straight away and once the checks have seen every instance
    // full: steno's own refusal, never HAProxy's.
    for when in ["at once", "after the checks"] {
        if when != "at once" {
            let full = time_until(Duration::from_secs(5), || async {
                cluster
                    .servers("live")
                    .await
                    .iter()
                    .all(|(name, s)| name.ends_with("_refuse") || !s.up)
            })
            .await;
            assert!(full.is_some(), "HAProxy never saw the instances full");
        }
        match Connector::new(listen_url(lb)).connect().await {
            Err(ConnectError::Refused {
                code,
                retry_after_s,
                close,
                ..
            }) => {
                assert_eq!(code, ErrorCode::OverCapacity, "{when}");
                assert!(retry_after_s.is_some(), "{when}");
                assert_eq!(close.map(|c| c.code), Some(1013), "{when}");
            }
            Err(other) => panic!("13th session {when}: {other}"),
            Ok(_) => panic!("13th session {when} admitted into a full cluster"),
        }
    }

    // All twelve speak at once and each hears its own sentence.
    let talks = sessions.into_iter().enumerate().map(|(n, s)| {
        let sentence = SENTENCES[n % 3];
        tokio::spawn(async move { (sentence, say(s, sentence).await) })
    });
    for talk in futures_util::future::join_all(talks).await {
        let (sentence, t) = talk.unwrap();
        check_heard(&t, sentence, &[1000]);
    }
    let mut refused = 0.0;
    for i in 1..=3 {
        refused += metric(cluster.instance(i), "steno_sessions_refused_total").await;
    }
    println!("12 sessions transcribed; refusals counted by the instances: {refused}");
    assert_eq!(refused, 2.0);

    // What the balancer and an autoscaler read: capacity, and a load ratio
    // that saw the speech (sampled once a second).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for i in 1..=3 {
        let m = steno_testkit::prometheus::scrape(cluster.instance(i))
            .await
            .unwrap();
        assert_eq!(m.value("steno_sessions_capacity"), 4.0);
        let ratio = m.value("steno_load_ratio");
        println!("instance {i}: load ratio {ratio:.3} after 4 sessions of one sentence each");
        assert!(ratio > 0.0 && ratio < 5.0, "load ratio {ratio}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_of_different_sizes_fill_in_proportion() {
    let _one = one_at_a_time().await;
    let cluster = up(3, "2,4,6").await;
    // Each agent has told HAProxy its weight: its capacity.
    let weights = time_until(Duration::from_secs(10), || async {
        let s = cluster.servers("live").await;
        ["steno1", "steno2", "steno3"].map(|n| s.get(n).map(|s| s.weight))
            == [Some(2), Some(4), Some(6)]
    })
    .await;
    assert!(
        weights.is_some(),
        "agent weights: {:?}",
        cluster.servers("live").await
    );
    let lb = cluster.lb();
    let half = open_many(lb, 6).await;
    let at_half = spread(&cluster).await;
    println!("6 sessions over instances of 2, 4 and 6: {at_half:?}");
    assert_eq!(at_half, vec![1.0, 2.0, 3.0]);
    let rest = open_many(lb, 6).await;
    let full = spread(&cluster).await;
    println!("12 sessions: {full:?}");
    assert_eq!(full, vec![2.0, 4.0, 6.0]);
    drop((half, rest));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_one_instance_while_the_others_take_new_sessions() {
    let _one = one_at_a_time().await;
    let cluster = up(3, "4").await;
    let lb = cluster.lb();
    let sessions = open_many(lb, 6).await;
    // Which sessions the instance to stop holds.
    let on_two = session_ids(cluster.instance(2)).await;
    assert_eq!(on_two.len(), 2, "{on_two:?}");

    let talks: Vec<_> = sessions
        .into_iter()
        .enumerate()
        .map(|(n, s)| {
            let draining = on_two.contains(&s.ready().session_id);
            let sentence = SENTENCES[n % 3];
            tokio::spawn(async move { (draining, sentence, say(s, sentence).await) })
        })
        .collect();
    // Mid-sentence: stop instance 2.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.signal(2, "TERM");
    let stopped_at = Instant::now();
    // Meanwhile, new sessions go to the others.
    let newcomers = open_many(lb, 3).await;
    let fresh = newcomers
        .into_iter()
        .map(|s| tokio::spawn(async move { say(s, SENTENCES[0]).await }));
    let fresh = futures_util::future::join_all(fresh).await;

    let (mut drained, mut untouched) = (0, 0);
    for talk in futures_util::future::join_all(talks).await {
        let (draining, sentence, t) = talk.unwrap();
        if draining {
            // The final of the sentence in flight, then 1001.
            check_heard(&t, sentence, &[1001]);
            drained += 1;
        } else {
            check_heard(&t, sentence, &[1000]);
            assert!(t.errors().is_empty(), "{:?}", t.messages);
            untouched += 1;
        }
    }
    for t in fresh {
        let t = t.unwrap();
        check_heard(&t, SENTENCES[0], &[1000]);
        assert!(t.errors().is_empty(), "{:?}", t.messages);
    }
    time_until(Duration::from_secs(30), || async {
        !std::path::Path::new(&format!("/proc/{}", cluster.pid(2))).exists()
    })
    .await
    .expect("instance 2 exits after its drain");
    println!(
        "SIGTERM: {drained} sessions drained (final, then 1001), {untouched} untouched and 3 new ones without an error; the instance exited {:.1} s after the signal",
        stopped_at.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_is_routed_around_and_the_restarted_instance_takes_sessions() {
    let _one = one_at_a_time().await;
    let cluster = up(3, "4").await;
    let lb = cluster.lb();
    // One session on each instance, talking when the third is killed.
    let before = open_many(lb, 3).await;
    let on_three = session_ids(cluster.instance(3)).await;
    assert_eq!(on_three.len(), 1, "spread {:?}", spread(&cluster).await);
    let talking: Vec<_> = before
        .into_iter()
        .map(|s| {
            let doomed = on_three.contains(&s.ready().session_id);
            tokio::spawn(async move { (doomed, say_until_cut(s, SENTENCES[2]).await) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.signal(3, "KILL");
    let killed_at = Instant::now();
    // New sessions right after the kill: a refused connect is retried on
    // another instance, so none fails.
    let right_after = open_many(lb, 3).await;
    let talks = right_after
        .into_iter()
        .map(|s| tokio::spawn(async move { say(s, SENTENCES[1]).await }));
    time_until(Duration::from_secs(10), || async {
        !cluster.servers("live").await["steno3"].up
    })
    .await
    .expect("HAProxy marks the killed instance down");
    let out_of_rotation = killed_at.elapsed();
    for t in futures_util::future::join_all(talks).await {
        check_heard(&t.unwrap(), SENTENCES[1], &[1000]);
    }
    for talk in futures_util::future::join_all(talking).await {
        match talk.unwrap() {
            // Cut with the process: no clean close.
            (true, Ok(t)) => assert!(
                !matches!(t.close_code(), Some(1000 | 1001)),
                "{:?}",
                t.messages
            ),
            (true, Err(_)) => {}
            (false, t) => {
                let t = t.expect("a session on an instance that lives");
                check_heard(&t, SENTENCES[2], &[1000]);
                assert!(t.errors().is_empty(), "{:?}", t.messages);
            }
        }
    }
    println!(
        "SIGKILL: out of HAProxy's rotation {:.2} s after the kill (checks every 1 s); its one session cut, the 2 on the others and 3 opened after the kill without an error",
        out_of_rotation.as_secs_f64()
    );

    cluster.script_async(&["restart", "3"]).await;
    let back = time_until(Duration::from_secs(10), || async {
        cluster.servers("live").await["steno3"].up
    })
    .await;
    assert!(back.is_some(), "the restarted instance is back in rotation");
    let sessions = open_many(lb, 6).await;
    let on_three = active(cluster.instance(3)).await;
    println!("after the restart: instance 3 holds {on_three} of 6 new sessions");
    assert_eq!(on_three, 2.0);
    drop(sessions);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_through_the_balancer_and_a_rolling_restart_that_drops_no_session() {
    let _one = one_at_a_time().await;
    let cluster = up(3, "4").await;
    let lb = cluster.lb();

    // A file job, submitted and followed through the balancer.
    let wav = temp_dir("cluster-job").join("sentence.wav");
    speech::write_wav(&wav, &espeak(SENTENCES[2]), 16_000);
    let data = std::fs::read(&wav).unwrap();
    let parts = [Part::file("file", "sentence.wav", &data)];
    let r = post_multipart(lb, "/v1/jobs", &[], &parts).await.unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json().unwrap()["id"].as_str().unwrap().to_string();
    let owner = id.split('-').next().unwrap().to_string();
    assert!(owner.starts_with("steno"), "{id}");
    let done = time_until(Duration::from_secs(60), || async {
        let (_, body) = http_get(lb, &format!("/v1/jobs/{id}")).await.unwrap();
        body.contains("\"status\":\"done\"")
    })
    .await;
    assert!(done.is_some(), "job {id} never finished");
    let (code, result) = http_get(lb, &format!("/v1/jobs/{id}/result"))
        .await
        .unwrap();
    assert_eq!(code, 200, "{result}");
    let text: serde_json::Value = serde_json::from_str(&result).unwrap();
    assert!(
        wer(SENTENCES[2], text["text"].as_str().unwrap()) <= MAX_WER,
        "{result}"
    );
    println!(
        "job {id} (owner {owner}) done through the balancer in {:.1} s",
        done.unwrap().as_secs_f64()
    );

    // A steady stream of sessions, three at a time, while every instance is
    // drained and restarted in turn.
    let rolling = Arc::new(AtomicBool::new(true));
    let counts = Arc::new(RollCounts::default());
    let streams: Vec<_> = (0..3)
        .map(|n| {
            let (rolling, counts) = (rolling.clone(), counts.clone());
            tokio::spawn(async move {
                let sentence = SENTENCES[n];
                while rolling.load(Ordering::SeqCst) {
                    let connect = Connector::new(listen_url(lb))
                        .connect_retrying(&RetryPolicy::default(), |r| println!("stream {n}: {r}"))
                        .await;
                    match connect {
                        Ok(s) => counts.count(&say(s, sentence).await, sentence),
                        Err(e) => counts.fail(format!("stream {n}: connect failed: {e}")),
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    cluster.script_async(&["roll"]).await;
    let roll_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    rolling.store(false, Ordering::SeqCst);
    for s in streams {
        s.await.unwrap();
    }
    let (ok, drained, moved) = (
        counts.ok.load(Ordering::SeqCst),
        counts.drained.load(Ordering::SeqCst),
        counts.moved.load(Ordering::SeqCst),
    );
    let failed = counts.failed.lock().unwrap().clone();
    println!(
        "rolling restart of 3 instances in {roll_s:.1} s: {ok} sessions clean, {drained} ended by a drain after their final, {moved} closed by a drain before any speech (the client went again), {} failed",
        failed.len()
    );
    assert!(failed.is_empty(), "{failed:#?}\n{}", cluster.logs());
    assert!(ok + drained >= 6, "the stream kept going: {ok} + {drained}");

    // The job's owner restarted on the same spool: its result still reads.
    let (code, result) = http_get(lb, &format!("/v1/jobs/{id}/result"))
        .await
        .unwrap();
    assert_eq!(code, 200, "after the roll: {result}");
}
