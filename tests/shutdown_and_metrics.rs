//! The server process as an operator sees it: SIGTERM during speech, the
//! scheduler under a flood, and /metrics as valid Prometheus text.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::speech::{espeak, opus_packets, silence};
use common::wer::wer;
use common::*;
use steno::protocol::ServerMessage;

const SENTENCE: &str = "Shutting down politely means finishing this sentence first.";

/// Starts `steno serve` as a child process on a free loopback port.
fn spawn_server(extra_env: &[(&str, &str)]) -> (std::process::Child, std::net::SocketAddr) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_steno"));
    cmd.current_dir(repo_root())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("STENO_MODEL__PATH", model_path())
        .env("STENO_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start steno");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[steno] {line}");
            let addr = line.split("addr=").nth(1).filter(|_| !sent);
            if let Some(addr) = addr {
                let addr = addr.split_whitespace().next().unwrap().parse().unwrap();
                tx.send(addr).unwrap();
                sent = true;
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("server prints its address");
    (child, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_speech_delivers_the_final_then_1001() {
    let (mut child, addr) = spawn_server(&[]);
    for _ in 0..600 {
        if let Ok((200, _)) = http_get(addr, "/health").await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/v1/listen?partials=false"))
            .await
            .unwrap();
    expect_ready(&mut ws).await;
    let mut audio = silence(300);
    audio.extend(espeak(SENTENCE));
    audio.extend(silence(1000));
    let packets = opus_packets(&audio, 20);
    // Half the sentence, then SIGTERM, then the rest at real-time pace.
    let half = packets.len() / 2;
    send_all(&mut ws, &packets[..half], Duration::from_millis(20)).await;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
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
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_sheds_partials_but_delivers_every_final() {
    let mut config = test_config();
    config.workers.count = 1;
    config.session.partial_interval_ms = 250;
    config.admission.max_sessions = 8;
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
                let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
                expect_ready(&mut ws).await;
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
    let scrape = parse_metrics(&text);
    let shed = value(&scrape, "steno_partials_shed_total");
    let sent = value(&scrape, "steno_partials_sent_total");
    println!("partials sent {sent}, shed {shed}");
    assert!(
        shed > 0.0,
        "one worker cannot serve 8 sessions' partials every 250 ms: some must be shed"
    );
    assert!(value(&scrape, "steno_utterances_total") >= 16.0);
    server.stop().await;
}

fn parse_metrics(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("valid Prometheus text")
}

fn value(scrape: &prometheus_parse::Scrape, name: &str) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_scrape_as_prometheus_text_with_the_documented_series() {
    let server = TestServer::start(test_config()).await;
    let mut ws = server.connect("partials=false").await;
    expect_ready(&mut ws).await;
    let mut audio = espeak("Counting what happens.");
    audio.extend(silence(800));
    send_all(&mut ws, &opus_packets(&audio, 20), Duration::ZERO).await;
    send_json(&mut ws, "{bad").await;
    send_json(&mut ws, r#"{"type":"end"}"#).await;
    let t = collect(&mut ws, Duration::from_secs(60)).await;
    assert_eq!(t.finals().len(), 1);
    let (status, text) = http_get(server.addr, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    let scrape = parse_metrics(&text);
    for name in [
        "steno_sessions_active",
        "steno_sessions_admitted_total",
        "steno_audio_received_milliseconds_total",
        "steno_utterances_total",
        "steno_workers_ready",
        "steno_errors_total",
    ] {
        assert!(
            scrape.samples.iter().any(|s| s.metric == name),
            "{name} missing from:\n{text}"
        );
    }
    for histogram in [
        "steno_inference_seconds",
        "steno_end_of_speech_to_final_seconds",
    ] {
        let h = scrape
            .samples
            .iter()
            .find(|s| s.metric == histogram)
            .unwrap_or_else(|| panic!("{histogram} missing from:\n{text}"));
        assert!(
            matches!(h.value, prometheus_parse::Value::Histogram(_)),
            "{histogram}: {:?}",
            h.value
        );
    }
    assert!(value(&scrape, "steno_audio_received_milliseconds_total") >= 1000.0);
    assert!(
        scrape.samples.iter().any(
            |s| s.metric == "steno_errors_total" && s.labels.get("code") == Some("bad_request")
        )
    );
    assert!(
        scrape
            .samples
            .iter()
            .all(|s| s.metric.starts_with("steno_")),
        "every series is steno_*"
    );
    server.stop().await;
}
