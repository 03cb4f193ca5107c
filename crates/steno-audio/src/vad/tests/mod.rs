//! Tests for the segmenter: scripted-decision invariants (`invariants`) and real speech through webrtc-vad (`speech`).

mod invariants;
mod speech;

use super::Segmenter;

#[test]
fn segmenter_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Segmenter>();
}

#[test]
fn a_manual_segmenter_cuts_only_where_it_is_told() {
    use crate::vad::{EndReason, SegmentEvent, Segmenter, SegmenterConfig};
    let config = SegmenterConfig::default();
    let mut seg = Segmenter::manual(&config).unwrap();
    let mut events = Vec::new();
    // Digital silence, then 2 s more: no voice detection, no end by pause.
    seg.push(&vec![0; 16_000], &mut events);
    seg.push(&vec![0; 32_000], &mut events);
    assert!(matches!(
        events[..],
        [SegmentEvent::SpeechStarted {
            utterance: 0,
            start_sample: 0
        }]
    ));
    let first = seg.finalize().unwrap();
    assert_eq!((first.start_sample, first.end_sample), (0, 48_000));
    assert_eq!(first.reason, EndReason::Finalize);
    // The next one starts where the first ended, nothing lost between.
    events.clear();
    seg.push(&vec![0; 8_000], &mut events);
    let second = seg.finalize().unwrap();
    assert_eq!((second.start_sample, second.end_sample), (48_000, 56_000));
    assert_eq!(second.audio.len(), 8_000);
    // Less than two frames since the last cut is no utterance.
    seg.push(&[0; 320], &mut events);
    assert!(seg.finalize().is_none());
}
