//! The watch-stream decoder: arbitrary bytes cut into arbitrary chunks must decode to events or
//! errors, never panic, and chunking must not change the result.
#![no_main]

use std::collections::VecDeque;

use kubemirror::client::WatchDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks a chunk size, the rest is the stream.
    let Some((&n, stream)) = data.split_first() else { return };
    let chunk = usize::from(n).max(1);
    let mut whole = VecDeque::new();
    let mut d = WatchDecoder::default();
    d.push(stream, &mut whole);
    d.finish(&mut whole);
    let mut pieces = VecDeque::new();
    let mut d = WatchDecoder::default();
    for c in stream.chunks(chunk) {
        d.push(c, &mut pieces);
    }
    d.finish(&mut pieces);
    assert_eq!(whole, pieces, "chunking changed the decoded events");
});
