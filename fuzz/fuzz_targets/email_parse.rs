//! Any bytes through the email parser: it may refuse them, never panic.
#![no_main]

use hopper_email::EmailConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let config = EmailConfig::default();
    let _ = hopper_email::parse::interpret(&config, data, &["hopper+x@example.com".to_owned()]);
});
