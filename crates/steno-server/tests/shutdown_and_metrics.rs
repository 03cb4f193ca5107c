//! The server process as an operator sees it: SIGTERM during speech, the
//! scheduler under a flood, and /metrics as valid Prometheus text.

mod common;

use std::time::Duration;
use steno_server::admission::SessionLimit;

use common::speech::{espeak, silence};
use common::wer::wer;
use common::*;
use steno_protocol::ServerMessage;
use steno_testkit::prometheus::Metrics;
use steno_testkit::server::{ServerCommand, ServerProcess};

const SENTENCE: &str = "Shutting down politely means finishing this sentence first.";

/// Starts `steno serve` as a child process on a free loopback port.
async fn spawn_server() -> ServerProcess {
    let command = ServerCommand::new(env!("CARGO_BIN_EXE_steno"))
        .env("STENO_MODEL__PATH", path_str(&model_path()))
        .env("STENO_LOG", "info")
        .log(std::env::temp_dir().join(format!("steno-sigterm-{}.log", std::process::id())));
    ServerProcess::start(&command, Duration::from_secs(60))
        .await
        .expect("steno starts and becomes healthy")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_speech_delivers_the_final_then_1001() {
    let mut server = spawn_server().await;
    let addr = server.addr;
    let mut ws = Connector::new(format!("ws://{addr}/v1/listen?partials=false"))
        .connect()
        .await
        .unwrap();
    let mut audio = silence(300);
    audio.extend(espeak(SENTENCE));
    audio.extend(silence(1000));
    let packets = opus_packets(&audio, 20);
    // Half the sentence, then SIGTERM, then the rest at real-time pace.
    let half = packets.len() / 2;
    send_all(&mut ws, &packets[..half], Duration::from_millis(20)).await;
    server.signal("TERM");
    send_all(&mut ws, &packets[half..], Duration::from_millis(20)).await;
    let t = collect(&mut ws, Duration::from_secs(30)).await;
    assert_eq!(
        t.finals().len(),
        1,
        "the final arrives before the close: {:?}",
        t.messages
    );
    assert!(wer(SENTENCE, &t.finals()[0].1) <= 0.25, "{:?}", t.finals());
    assert_eq!(t.close_code(), Some(1001));
    // New sessions are refused while draining, and the process exits 0.
    let exit = server
        .wait_exit(Duration::from_secs(30))
        .await
        .unwrap()
        .expect("the process exits after its drain");
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_sheds_partials_but_delivers_every_final() {
    let mut config = test_config();
    config.workers.count = 1;
    config.session.partial_interval_ms = 250;
    config.admission.max_sessions = SessionLimit::Fixed(8);
    let server = TestServer::start(config).await;
    let mut audio = silence(200);
    audio.extend(espeak(
        "Every final must arrive even when the server is flooded with partial requests.",
    ));
    audio.extend(silence(800));
    audio.extend(espeak("This is the second sentence of the flood test."));
    audio.extend(silence(1200));
    let packets = opus_packets(&audio, 20);
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let url = server.url("partials=true");
            let packets = packets.clone();
            tokio::spawn(async move {
                let mut ws = Connector::new(url).connect().await.unwrap();
                send_all(&mut ws, &packets, Duration::from_millis(20)).await;
                send_json(&mut ws, r#"{"type":"end"}"#).await;
                collect(&mut ws, Duration::from_secs(120)).await
            })
        })
        .collect();
    for c in clients {
        let t = c.await.unwrap();
        assert_eq!(t.finals().len(), 2, "{:?}", t.messages);
        assert!(matches!(
            t.messages.last(),
            Some(ServerMessage::End { utterances: 2, .. })
        ));
        assert_eq!(t.close_code(), Some(1000));
    }
    let (_, text) = http_get(server.addr, "/metrics").await.unwrap();
    let scrape = Metrics::parse(&text).unwrap();
    let shed = scrape.value("steno_partials_shed_total");
    let sent = scrape.value("steno_partials_sent_total");
    println!("partials sent {sent}, shed {shed}");
    assert!(
        shed > 0.0,
        "one worker cannot serve 8 sessions' partials every 250 ms: some must be shed"
    );
    assert!(scrape.value("steno_utterances_total") >= 16.0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_scrape_as_prometheus_text_with_the_documented_series() {
    let server = TestServer::start(test_config()).await;
    let mut ws = server.connect("partials=false").await;
    let mut audio = espeak("Counting what happens.");
    audio.extend(silence(800));
    send_all(&mut ws, &opus_packets(&audio, 20), Duration::ZERO).await;
    send_json(&mut ws, "{bad").await;
    send_json(&mut ws, r#"{"type":"end"}"#).await;
    let t = collect(&mut ws, Duration::from_secs(60)).await;
    assert_eq!(t.finals().len(), 1);
    let (status, text) = http_get(server.addr, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    let scrape = Metrics::parse(&text).expect("valid Prometheus text");
    for name in [
        "steno_sessions_active",
        "steno_sessions_admitted_total",
        "steno_audio_received_milliseconds_total",
        "steno_utterances_total",
        "steno_workers_ready",
        "steno_errors_total",
    ] {
        assert!(scrape.has(name), "{name} missing from:\n{text}");
    }
    for histogram in [
        "steno_inference_seconds",
        "steno_end_of_speech_to_final_seconds",
    ] {
        assert_eq!(
            scrape.types.get(histogram).map(String::as_str),
            Some("histogram"),
            "{histogram} missing from:\n{text}"
        );
        assert!(
            scrape.has(&format!("{histogram}_count"))
                && scrape
                    .buckets
                    .keys()
                    .any(|k| k.starts_with(&format!("{histogram}_bucket"))),
            "{histogram} has buckets, a sum and a count:\n{text}"
        );
    }
    assert!(scrape.value("steno_audio_received_milliseconds_total") >= 1000.0);
    assert!(scrape.value(r#"steno_errors_total{code="bad_request"}"#) >= 1.0);
    assert!(
        scrape
            .series
            .keys()
            .chain(scrape.buckets.keys())
            .all(|s| s.starts_with("steno_")),
        "every series is steno_*"
    );
    for family in scrape.types.keys() {
        assert!(scrape.help.contains_key(family), "{family} has HELP text");
    }
    server.stop().await;
}
