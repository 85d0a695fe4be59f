//! The fuzz target's property on stable, in CI: thousands of mangled variants of real messages
//! (bit flips, cuts, spliced bytes, broken encodings) through the parser; it may refuse a
//! message, it must never panic, and what it accepts always has a title.
#![allow(clippy::unwrap_used)]

use hopper_email::{EmailConfig, parse};
use hopper_integration_api::{Action, InboundError};

const SEEDS: &[&[u8]] = &[
    include_bytes!("../../../tests/fixtures/email/multipart_latin1.eml"),
    include_bytes!("../../../tests/fixtures/email/reply_html.eml"),
    b"Subject: =?UTF-8?B?w6k=?=\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n--b--",
    b"From: <>\r\nTo: hopper+@x\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!!",
];

/// xorshift: deterministic, so a failure reproduces.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut m = seed.to_vec();
    for _ in 0..=rng.below(8) {
        match rng.below(5) {
            0 if !m.is_empty() => {
                let i = rng.below(m.len());
                m[i] ^= 1 << rng.below(8);
            }
            1 => m.truncate(rng.below(m.len() + 1)),
            2 => {
                let i = rng.below(m.len() + 1);
                let junk: &[u8] =
                    [&b"\r\n"[..], b"=?", b"--", b"\xff\xfe", b"boundary=", b";"][rng.below(6)];
                m.splice(i..i, junk.iter().copied());
            }
            3 if m.len() > 2 => {
                let a = rng.below(m.len());
                let b = rng.below(m.len());
                let (a, b) = (a.min(b), a.max(b));
                m.drain(a..b);
            }
            _ => m.push(rng.below(256) as u8),
        }
    }
    m
}

#[test]
fn mangled_mail_never_panics_and_accepted_mail_has_a_title() {
    let config = EmailConfig::default();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut tasks, mut refused) = (0, 0);
    for round in 0..4000 {
        let input = mutate(&mut rng, SEEDS[round % SEEDS.len()]);
        match parse::interpret(&config, &input, &[]) {
            Ok(i) => {
                if let Action::Task(d) = i.action {
                    assert!(!d.title.trim().is_empty(), "untitled task from {input:?}");
                    assert!(d.validate().is_ok(), "{:?}", d.validate());
                    tasks += 1;
                }
            }
            Err(InboundError::Malformed(_)) => refused += 1,
            Err(e) => panic!("unexpected error {e} for {input:?}"),
        }
    }
    assert!(
        tasks > 1000 && refused > 0,
        "tasks {tasks}, refused {refused}"
    );
}
