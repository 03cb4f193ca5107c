//! Resume after a dropped connection, against the real server and model through a TCP proxy that cuts connections: steno-client's ResumingSession reconnects with the token from `ready`, resends what the server lacks and gets the same transcript as an unbroken run, whether the server saw the cut or not; a reused or expired token is refused with a clear error, and a session nobody comes back for frees its slot after `session.resume_grace_s`.

mod common;
#[path = "resume/proxy.rs"]
mod proxy;

use std::sync::Arc;
use std::time::{Duration, Instant};
use steno_server::admission::SessionLimit;

use common::speech::{espeak, silence};
use common::*;
use proxy::Proxy;
use steno_client::{Event, ResumeOptions};
use steno_protocol::ErrorCode;

const FIRST: &str = "Please call me back tomorrow morning at the office.";
const SECOND: &str = "Good morning, this is a test of the speech server.";
const PACKET_MS: usize = 20;

/// The counters are the process's: one test at a time, so each reads its own.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const COUNTERS: [&str; 3] = [
    "steno_sessions_parked_total",
    "steno_sessions_resumed_total",
    "steno_resumes_refused_total",
];

async fn counters(server: &TestServer) -> [f64; 3] {
    let mut values = [0.0; 3];
    for (v, name) in values.iter_mut().zip(COUNTERS) {
        *v = metric(server.addr, name).await;
    }
    values
}

async fn counted_since(server: &TestServer, before: [f64; 3]) -> [f64; 3] {
    let now = counters(server).await;
    [now[0] - before[0], now[1] - before[1], now[2] - before[2]]
}

fn speech_packets() -> Vec<Vec<u8>> {
    let mut audio = silence(300);
    audio.extend(espeak(FIRST));
    audio.extend(silence(1200));
    audio.extend(espeak(SECOND));
    audio.extend(silence(1200));
    opus_packets(&audio, PACKET_MS)
}

#[derive(Clone, Copy, Debug)]
enum Cut {
    /// Both sides see the connection end.
    Both,
    /// Only the client's side ends; the server's stays open and silent.
    ClientSide,
}

/// Streams `packets` through the proxy with a resuming session (4x real
/// time), cutting the connection at the packet indices in `cuts`; the
/// transcript and how often the session resumed.
async fn stream(
    proxy: &Arc<Proxy>,
    packets: &[Vec<u8>],
    cuts: &[(usize, Cut)],
) -> (Transcript, u32) {
    let url = format!("ws://{}/v1/listen?partials=false", proxy.addr);
    let session = Connector::new(url)
        .connect_resuming(ResumeOptions::default())
        .await
        .expect("connect");
    assert!(
        session.ready().resume_token.is_some(),
        "ready carries a resume token"
    );
    let (sender, mut receiver) = session.split();
    let send = {
        let packets = packets.to_vec();
        let cuts = cuts.to_vec();
        let proxy = proxy.clone();
        tokio::spawn(async move {
            for (i, packet) in packets.into_iter().enumerate() {
                if let Some((_, how)) = cuts.iter().find(|(at, _)| *at == i) {
                    match how {
                        Cut::Both => proxy.cut().await,
                        Cut::ClientSide => proxy.cut_client_side().await,
                    }
                }
                sender.send_audio(packet, PACKET_MS as u64).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            sender.end().await.unwrap();
        })
    };
    let mut t = Transcript::default();
    let collected = tokio::time::timeout(Duration::from_secs(90), async {
        while let Some(event) = receiver.next().await {
            let closed = matches!(event, Ok(Event::Closed(_)));
            t.push(event.expect("the session goes on"));
            if closed {
                break;
            }
        }
    })
    .await;
    assert!(collected.is_ok(), "no close within 90 s: {:?}", t.messages);
    send.await.unwrap();
    (t, receiver.resumes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_connection_resumes_with_the_same_transcript() {
    let _serial = SERIAL.lock().await;
    let server = TestServer::start(test_config()).await;
    let before = counters(&server).await;
    let proxy = Arc::new(Proxy::start(server.addr).await);
    let packets = speech_packets();
    let (unbroken, resumes) = stream(&proxy, &packets, &[]).await;
    assert_eq!(resumes, 0);
    assert_eq!(unbroken.close_code(), Some(1000));
    let expected = unbroken.finals();
    println!("unbroken: {expected:?}");
    assert_eq!(expected.len(), 2, "{:?}", unbroken.messages);

    // Mid-utterance cuts: one inside each sentence; the second one the
    // server does not see (its side of the proxy stays open).
    let first_mid = (300 + espeak(FIRST).len() / 32) / PACKET_MS;
    let second_mid = packets.len() - (1200 + espeak(SECOND).len() / 32) / PACKET_MS;
    for cuts in [
        vec![(first_mid, Cut::Both), (second_mid, Cut::Both)],
        vec![(second_mid, Cut::ClientSide)],
    ] {
        let started = Instant::now();
        let (resumed, resumes) = stream(&proxy, &packets, &cuts).await;
        println!(
            "cut at {cuts:?}: {} resumes, {:?}: {:?}",
            resumes,
            started.elapsed(),
            resumed.finals()
        );
        assert_eq!(resumes as usize, cuts.len());
        assert_eq!(resumed.close_code(), Some(1000), "{:?}", resumed.messages);
        assert_eq!(
            resumed.finals(),
            expected,
            "the transcript of a resumed session is that of an unbroken one"
        );
    }
    // Parked 3 times, resumed 3 times, nothing refused.
    assert_eq!(counted_since(&server, before).await, [3.0, 3.0, 0.0]);
    assert!(wait_sessions(server.addr, 0, Duration::from_secs(10)).await);
    server.stop().await;
}

/// The raw protocol: a connection's `ready` token, then a cut.
async fn open_and_cut(proxy: &Proxy, query: &str) -> (String, steno_client::Session) {
    let session = Connector::new(format!("ws://{}/v1/listen?{query}", proxy.addr))
        .connect()
        .await
        .expect("connect");
    let token = session
        .ready()
        .resume_token
        .clone()
        .expect("a resume token");
    (token, session)
}

fn refused_message(result: Result<steno_client::Session, ConnectError>) -> String {
    match result {
        Err(ConnectError::Refused {
            code,
            message,
            close,
            ..
        }) => {
            assert_eq!(code, ErrorCode::BadRequest);
            assert_eq!(close.map(|c| c.code), Some(1008));
            message
        }
        Err(other) => panic!("expected a refusal, got {other}"),
        Ok(s) => panic!("resumed with a spent token: {:?}", s.ready()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spent_and_expired_tokens_are_refused_and_slots_come_back() {
    let mut config = test_config();
    config.session.resume_grace_s = 1.0;
    config.admission.max_sessions = SessionLimit::Fixed(1);
    let _serial = SERIAL.lock().await;
    let server = TestServer::start(config).await;
    let before = counters(&server).await;
    let proxy = Proxy::start(server.addr).await;
    let addr = proxy.addr;
    let resume = |token: &str| {
        let connector = Connector::new(format!("ws://{addr}/v1/listen?resume={token}&finals=0"));
        async move { connector.connect().await }
    };

    // A first cut, and the session resumes: the new ready says how much
    // audio the server had and gives a new token.
    let (first_token, mut session) =
        open_and_cut(&proxy, "encoding=pcm_s16le&partials=false").await;
    for chunk in pcm_chunks(&silence(500), 100, 16_000) {
        session.send_audio(chunk).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.cut().await;
    let resumed = resume(&first_token).await.expect("the session resumes");
    assert_eq!(resumed.ready().session_id, session.ready().session_id);
    assert_eq!(resumed.ready().received_ms, Some(500));
    let second_token = resumed.ready().resume_token.clone().unwrap();
    assert_ne!(second_token, first_token);

    // The first token is spent.
    let message = refused_message(resume(&first_token).await);
    println!("reused token: {message}");
    assert!(message.contains("already used"), "{message}");

    // Nobody comes back after the next cut: the token expires and the
    // slot (the server's only one) is free again.
    proxy.cut().await;
    let cut_at = Instant::now();
    assert!(wait_sessions(server.addr, 0, Duration::from_secs(10)).await);
    let freed_after = cut_at.elapsed();
    println!("slot free {freed_after:?} after the cut (grace 1 s)");
    assert!(
        freed_after >= Duration::from_millis(900),
        "freed before the grace ended"
    );
    let message = refused_message(resume(&second_token).await);
    assert!(message.contains("past its grace"), "{message}");
    let mut fresh = server.connect("").await;
    fresh.end().await.unwrap();
    assert_eq!(
        collect(&mut fresh, Duration::from_secs(10))
            .await
            .close_code(),
        Some(1000)
    );

    // Parked twice, resumed once, refused twice.
    assert_eq!(counted_since(&server, before).await, [2.0, 1.0, 2.0]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_grace_offers_no_resume() {
    let mut config = test_config();
    config.session.resume_grace_s = 0.0;
    let _serial = SERIAL.lock().await;
    let server = TestServer::start(config).await;
    let mut session = server.connect("").await;
    assert_eq!(session.ready().resume_token, None);
    session.end().await.unwrap();
    let refused = Connector::new(server.url("resume=abc&finals=0"))
        .connect()
        .await;
    assert!(refused_message(refused).contains("unknown"));
    server.stop().await;
}
