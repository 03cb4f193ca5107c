//! Fuzzes the two parsers that read what a client chooses: the `/v1/listen`
//! query string (`ListenParams::from_query`) and the JSON control messages
//! (`ClientMessage::parse`). Both get the same input, as text.
//!
//! Beyond "never panics", each checks what a valid answer means:
//! - a query that parses names a served configuration (one of the four PCM
//!   rates, 16 kHz for Opus, English), and its canonical spelling parses to
//!   the same parameters;
//! - a control message that parses is exactly the JSON object
//!   `{"type": NAME}` naming that message; any other input gets a
//!   `bad control message` error of bounded size, whatever the input's (it
//!   is sent back to the client).

#![no_main]

use libfuzzer_sys::fuzz_target;
use steno_protocol::{ClientMessage, Encoding, ListenParams};

/// The longest `bad control message` error: 120 characters of detail (4
/// bytes each at most) plus the fixed text.
const MAX_ERROR_BYTES: usize = 120 * 4 + 128;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    check_query(&text);
    check_control(&text);
});

fn check_query(query: &str) {
    match ListenParams::from_query(Some(query)).and_then(|p| p.check_language("en").map(|()| p)) {
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
            assert!(
                p.language.as_deref().is_none_or(|l| l == "en"),
                "{query:?}"
            );
            let canonical = p.to_query();
            let again = ListenParams::from_query(Some(&canonical));
            assert_eq!(again.as_ref(), Ok(&p), "{query:?} -> {canonical:?}");
        }
        Err(e) => {
            let message = e.to_string();
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
            // This target found serde's internally tagged enum taking
            // `{"type":"end","x":1}` and `["end"]` (docs/reliability.md, B2).
            let value: serde_json::Value =
                serde_json::from_str(text).expect("an accepted message is JSON");
            let object = value.as_object().expect("an accepted message is an object");
            assert_eq!(object.len(), 1, "{text:?}: only `type` is allowed");
            assert_eq!(object.get("type").and_then(|t| t.as_str()), Some(name));
            let canonical = format!(r#"{{"type":"{name}"}}"#);
            assert_eq!(ClientMessage::parse(&canonical), Ok(m));
        }
        Err(e) => {
            let message = e.to_string();
            assert!(message.starts_with("bad control message"), "{message}");
            // Errors used to quote the input Debug-escaped, up to 6 bytes
            // back per byte in (docs/reliability.md, B3).
            assert!(
                message.len() <= MAX_ERROR_BYTES,
                "{text:?}: error of {} bytes",
                message.len()
            );
        }
    }
}
