//! Fuzzes the two parsers that read what a client chooses: the `/v1/listen`
//! query string (`ListenParams::from_query`) and the JSON control messages
//! (`ClientMessage::parse`). Both get the same input, as text.
//!
//! Beyond "never panics", each checks what a valid answer means:
//! - a query that parses names a served configuration (one of the four PCM
//!   rates, 16 kHz for Opus, English), and its canonical spelling parses to
//!   the same parameters;
//! - a control message that parses is a JSON object `{"type": NAME}` naming
//!   that message (with `STRICT`; see the known bug below); any other input
//!   gets a `bad control message` error whose size stays within a small
//!   multiple of the input (it is sent back to the client).

#![no_main]

use libfuzzer_sys::fuzz_target;
use steno::codec::Encoding;
use steno::protocol::{ClientMessage, ListenParams};

/// Whether `ClientMessage::parse` takes only `{"type": NAME}`, as
/// docs/protocol.md says: false until known bug B2 is fixed.
const STRICT: bool = true;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    check_query(&text);
    check_control(&text);
});

fn check_query(query: &str) {
    match ListenParams::from_query(Some(query)) {
        Ok(p) => {
            assert!(
                [8_000, 16_000, 24_000, 48_000].contains(&p.sample_rate_hz),
                "{query:?} gave rate {}",
                p.sample_rate_hz
            );
            if p.encoding == Encoding::Opus {
                assert_eq!(
                    p.sample_rate_hz, 16_000,
                    "{query:?}: Opus is decoded at 16 kHz"
                );
            }
            assert_eq!(p.language, "en", "{query:?}");
            let encoding = match p.encoding {
                Encoding::Opus => "opus",
                Encoding::PcmS16le => "pcm_s16le",
            };
            let canonical = format!(
                "encoding={encoding}&sample_rate={}&partials={}&language={}",
                p.sample_rate_hz, p.partials, p.language
            );
            let again = ListenParams::from_query(Some(&canonical));
            assert_eq!(again.as_ref(), Ok(&p), "{query:?} -> {canonical:?}");
        }
        Err(message) => {
            assert!(!message.is_empty(), "{query:?}: empty error");
            // Debug-escaping a value can at most take 10 bytes per input byte.
            assert!(
                message.len() <= 10 * query.len() + 128,
                "{query:?}: error of {} bytes",
                message.len()
            );
        }
    }
}

fn check_control(text: &str) {
    match ClientMessage::parse(text) {
        Ok(m) => {
            let name = match m {
                ClientMessage::Finalize => "finalize",
                ClientMessage::End => "end",
                ClientMessage::Keepalive => "keepalive",
            };
            let value: serde_json::Value =
                serde_json::from_str(text).expect("an accepted message is JSON");
            if STRICT {
                let object = value.as_object().expect("an accepted message is an object");
                assert_eq!(object.len(), 1, "{text:?}: only `type` is allowed");
                assert_eq!(object.get("type").and_then(|t| t.as_str()), Some(name));
            } else {
                // KNOWN BUG B2 (docs/reliability.md): serde's internally
                // tagged enum also takes `{"type":"end","x":1}` (extra keys:
                // `deny_unknown_fields` does not reach unit variants) and
                // `["end"]` (the tag as a sequence's first element).
                let tag = match &value {
                    serde_json::Value::Object(o) => o.get("type"),
                    serde_json::Value::Array(a) => a.first(),
                    _ => None,
                };
                assert_eq!(tag.and_then(|t| t.as_str()), Some(name), "{text:?}");
            }
            let canonical = format!(r#"{{"type":"{name}"}}"#);
            assert_eq!(ClientMessage::parse(&canonical), Ok(m));
        }
        Err(message) => {
            assert!(message.starts_with("bad control message"), "{message}");
            // serde quotes the offending string Debug-escaped (`\u{7f}` for
            // one byte): up to 6 bytes back per byte in (known bug B3).
            assert!(
                message.len() <= 6 * text.len() + 256,
                "{text:?}: error of {} bytes",
                message.len()
            );
        }
    }
}
