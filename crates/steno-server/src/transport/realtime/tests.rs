//! The door's mapping without a server: client events to session input, pipeline events to server events, the state between them.

use serde_json::{Value, json};
use steno_audio::vad::SegmenterConfig;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::*;

fn door() -> Door {
    let settings = Settings::new(&SegmenterConfig::default(), "en", "tiny.en", false);
    Door::new(settings, "s1", 0)
}

fn send(door: &mut Door, event: Value) -> Input {
    door.listen(Read::Text(Utf8Bytes::from(event.to_string())))
}

fn append_ms(door: &mut Door, ms: usize) -> Input {
    use base64::Engine;
    let bytes = vec![0u8; ms * door.settings.format.bytes_per_ms()];
    let audio = base64::engine::general_purpose::STANDARD.encode(bytes);
    send(
        door,
        json!({"type": "input_audio_buffer.append", "audio": audio}),
    )
}

/// The `error` event a reply holds.
fn error_of(input: Input) -> Value {
    let Input::Reply(text) = input else {
        panic!("expected a reply, got {input:?}");
    };
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["type"], "error", "{v}");
    v["error"].clone()
}

fn types(out: &[String]) -> Vec<String> {
    out.iter()
        .map(|t| {
            serde_json::from_str::<Value>(t).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn a_manual_session_commits_what_was_appended() {
    let mut d = door();
    let update = json!({"type": "session.update", "event_id": "u1", "session": {"type": "transcription", "audio": {"input": {"turn_detection": null, "format": {"type": "audio/pcmu"}}}}});
    let Input::Configure(change) = send(&mut d, update) else {
        panic!("session.update configures");
    };
    assert!(change.decoder.is_some() && change.segmenter.is_some());
    let reply: Value = serde_json::from_str(&change.reply).unwrap();
    assert_eq!(reply["type"], "session.updated");
    assert!(reply["session"]["audio"]["input"]["turn_detection"].is_null());
    // Too little audio: refused, naming the client's event.
    assert!(matches!(append_ms(&mut d, 50), Input::Audio(a) if a.len() == 400));
    let err = error_of(send(
        &mut d,
        json!({"type": "input_audio_buffer.commit", "event_id": "c1"}),
    ));
    assert_eq!(err["code"], "input_audio_buffer_commit_empty");
    assert_eq!(err["event_id"], "c1");
    append_ms(&mut d, 100);
    assert!(matches!(
        send(&mut d, json!({"type": "input_audio_buffer.commit"})),
        Input::Control(ClientMessage::Finalize)
    ));
    // Manual sessions get no speech_started/stopped, only committed.
    let mut out = d.speak(Event::SpeechStarted {
        utterance: 0,
        start_ms: 0,
    });
    out.extend(d.speak(Event::SpeechEnded {
        utterance: 0,
        end_ms: 150,
    }));
    assert_eq!(types(&out), ["input_audio_buffer.committed"]);
    // The format is fixed now.
    let late = json!({"type": "session.update", "session": {"audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}}}}});
    let err = error_of(send(&mut d, late));
    assert_eq!(err["param"], "session.audio.input.format");
}

#[test]
fn server_vad_events_come_in_the_sdks_order() {
    let mut d = door();
    let mut out = d.speak(Event::SpeechStarted {
        utterance: 0,
        start_ms: 300,
    });
    out.extend(d.speak(Event::Partial {
        utterance: 0,
        text: " Please call".into(),
        start_ms: 300,
        end_ms: 900,
    }));
    out.extend(d.speak(Event::Partial {
        utterance: 0,
        text: " Please call me".into(),
        start_ms: 300,
        end_ms: 1200,
    }));
    out.extend(d.speak(Event::SpeechEnded {
        utterance: 0,
        end_ms: 2100,
    }));
    out.extend(d.speak(Event::Final {
        utterance: 0,
        text: " Please call me back.".into(),
        start_ms: 300,
        end_ms: 2100,
        processing_ms: 80,
        words: Vec::new(),
        degraded: false,
    }));
    assert_eq!(
        types(&out),
        [
            "input_audio_buffer.speech_started",
            "conversation.item.input_audio_transcription.delta",
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.committed",
            "conversation.item.input_audio_transcription.delta",
            "conversation.item.input_audio_transcription.completed",
        ]
    );
    let v: Vec<Value> = out
        .iter()
        .map(|t| serde_json::from_str(t).unwrap())
        .collect();
    assert_eq!(v[0]["audio_start_ms"], 300);
    assert_eq!(v[2]["audio_end_ms"], 2100);
    assert!(v[3]["previous_item_id"].is_null());
    assert_eq!(
        format!(
            "{}{}",
            v[1]["delta"].as_str().unwrap(),
            v[4]["delta"].as_str().unwrap()
        ),
        "Please call me back."
    );
    assert_eq!(v[5]["transcript"], "Please call me back.");
    assert_eq!(v[5]["usage"]["seconds"], 1.8);
    assert!(
        v.iter()
            .all(|e| e.get("item_id").is_none_or(|i| i == "item_s1_0"))
    );
    // The next item names this one as its previous.
    let next = d.speak(Event::SpeechEnded {
        utterance: 1,
        end_ms: 5000,
    });
    let committed: Value = serde_json::from_str(&next[1]).unwrap();
    assert_eq!(committed["previous_item_id"], "item_s1_0");
}

#[test]
fn a_clear_drops_the_open_items_partials() {
    let mut d = door();
    d.speak(Event::SpeechStarted {
        utterance: 0,
        start_ms: 0,
    });
    assert!(matches!(
        send(&mut d, json!({"type": "input_audio_buffer.clear"})),
        Input::Discard
    ));
    assert_eq!(
        types(&d.speak(Event::Discarded { utterance: Some(0) })),
        ["input_audio_buffer.cleared"]
    );
    for _ in 0..2 {
        assert!(
            d.speak(Event::Partial {
                utterance: 0,
                text: "late words".into(),
                start_ms: 0,
                end_ms: 900
            })
            .is_empty()
        );
    }
    // With server VAD and nothing open, a commit is refused.
    let err = error_of(send(&mut d, json!({"type": "input_audio_buffer.commit"})));
    assert_eq!(err["code"], "input_audio_buffer_commit_empty");
}

#[test]
fn a_lost_final_fails_its_item_then_says_why() {
    let mut d = door();
    d.speak(Event::SpeechEnded {
        utterance: 0,
        end_ms: 1000,
    });
    let out = d.speak(Event::Error {
        code: ErrorCode::ShuttingDown,
        message: "stopped".into(),
    });
    assert_eq!(
        types(&out),
        [
            "conversation.item.input_audio_transcription.failed",
            "error"
        ]
    );
    // Other errors fail no item.
    d.speak(Event::SpeechEnded {
        utterance: 1,
        end_ms: 2000,
    });
    let out = d.speak(Event::Error {
        code: ErrorCode::BadAudio,
        message: "odd".into(),
    });
    let e: Value = serde_json::from_str(&out[0]).unwrap();
    assert_eq!(
        (e["error"]["type"].as_str(), e["error"]["code"].as_str()),
        (Some("invalid_request_error"), Some("bad_audio"))
    );
}

#[test]
fn words_and_logprobs_come_when_included() {
    let mut d = door();
    let update = json!({"type": "session.update", "session": {"include": ["item.input_audio_transcription.logprobs", "item.input_audio_transcription.words"]}});
    let Input::Configure(change) = send(&mut d, update) else {
        panic!("configures");
    };
    assert_eq!(change.words, Some(true));
    let word = crate::worker::Word {
        text: " Hello".into(),
        start_ms: 10,
        end_ms: 400,
        probability: 0.5,
    };
    let out = d.speak(Event::Final {
        utterance: 0,
        text: " Hello".into(),
        start_ms: 0,
        end_ms: 500,
        processing_ms: 1,
        words: vec![word],
        degraded: false,
    });
    let v: Value = serde_json::from_str(out.last().unwrap()).unwrap();
    assert_eq!(v["words"][0]["end_ms"], 400);
    assert!((v["logprobs"][0]["logprob"].as_f64().unwrap() - 0.5f64.ln()).abs() < 1e-9);
}

#[test]
fn the_query_needs_the_transcription_intent() {
    assert!(query(Some("intent=transcription&model=x")).is_ok_and(|q| !q.words));
    assert!(query(Some("intent=transcription&words=true")).is_ok_and(|q| q.words));
    assert!(query(None).unwrap_err().contains("intent=transcription"));
    assert!(query(Some("model=gpt-realtime")).is_err());
    assert!(query(Some("intent=conversation")).is_err());
    assert!(query(Some("intent=transcription&words=maybe")).is_err());
}
