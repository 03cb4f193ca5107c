//! Tests for the segmenter: scripted-decision invariants (`invariants`) and real speech through webrtc-vad (`speech`).

mod invariants;
mod speech;

use super::Segmenter;

#[test]
fn segmenter_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Segmenter>();
}
