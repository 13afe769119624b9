//! A bounded, deterministic fuzz of the decoder: real lines with random byte edits.
//! Nothing may panic, and every line the decoder accepts must rebuild to exactly what
//! a JSON parser reads from it (losslessness on inputs nobody wrote by hand).

mod common;

use std::sync::Arc;

use common::*;
use fhir_ingest::{
    decode::{LineDecoder, LineOrigin, RunLineage},
    maintain::rebuild::rebuild_batch,
};

/// xorshift64: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const EDITS: &[&[u8]] = &[
    b"0",
    b"-0",
    b"1.50",
    b"1e400",
    b"\"",
    b"\\",
    b"null",
    b"[]",
    b"{}",
    b",",
    b":",
    b"\xff",
    b"true",
    b"\"x\":1,",
    b"\\u00e9",
    b"123456789012",
];

fn mutate(line: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = line.to_vec();
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(out.len());
        match rng.below(3) {
            0 => {
                out.remove(at);
            }
            1 => {
                let edit = EDITS[rng.below(EDITS.len())];
                out.splice(at..at, edit.iter().copied());
            }
            _ => {
                let edit = EDITS[rng.below(EDITS.len())];
                let end = (at + edit.len()).min(out.len());
                out.splice(at..end, edit.iter().copied());
            }
        }
    }
    out
}

#[test]
fn mutated_lines_never_panic_and_accepted_ones_round_trip() {
    let registry = registry();
    let lineage = Arc::new(RunLineage {
        source: "fuzz".into(),
        namespace: "fuzz".into(),
        run_id: "fuzz".into(),
        transaction_time: None,
    });
    let origin = LineOrigin {
        file: Arc::from("fuzz.ndjson"),
        expected_type: None,
        skip_parameters: false,
    };
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(sample_dir()).unwrap() {
        let path = entry.unwrap().path();
        lines.extend(
            original_lines(&path)
                .into_iter()
                .take(20)
                .map(|(_, v)| v.to_string().into_bytes()),
        );
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut accepted, mut rejected) = (0, 0);
    for round in 0..3000 {
        let line = mutate(&lines[round % lines.len()], &mut rng);
        let mut decoder = LineDecoder::new(registry.clone(), lineage.clone());
        if decoder.decode_line(&line, &origin, 1).is_err() {
            rejected += 1;
            continue;
        }
        accepted += 1;
        let (resource_type, batch) = decoder.finish_all().unwrap().remove(0);
        let rebuilt = rebuild_batch(registry.require(&resource_type).unwrap(), &batch)
            .unwrap()
            .remove(0)
            .resource;
        // simd-json and serde_json agree on what JSON is, except that serde_json
        // refuses some numbers simd-json reads as floats (1e400): skip those.
        let Ok(expected) = serde_json::from_slice::<serde_json::Value>(&line) else {
            continue;
        };
        assert_eq!(rebuilt, expected, "line {}", String::from_utf8_lossy(&line));
    }
    eprintln!("{accepted} mutated lines accepted, {rejected} rejected");
    assert!(
        accepted > 100 && rejected > 100,
        "{accepted} accepted, {rejected} rejected"
    );
}
