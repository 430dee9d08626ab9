//! Compact token parsing: segments, strict base64url, header JSON, payload.
//!
//! Besides never panicking, parsing must cost work linear in the input: the
//! duplicate-member checks may make at most a fixed number of comparisons
//! per member, so a member bomb (thousands of distinct names in one object,
//! quadratic in a linear scan) fails the run on any machine, fast or slow.
#![no_main]
use keyward_core::fuzzing::{duplicate_check_work, MAX_WORK_PER_MEMBER};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        // decode_unverified runs the size limit, the split, base64url and the
        // header checks; the payload must then be UTF-8.
        let (_, work) = duplicate_check_work(|| keyward_core::decode_unverified(token));
        // a member needs more than one byte of input
        let bound = MAX_WORK_PER_MEMBER * data.len() as u64;
        assert!(work <= bound, "{work} name comparisons for {} bytes", data.len());
    }
});
