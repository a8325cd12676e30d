//! Benchmark of `evaluate` with the full catalog over the launch corpus (`tests/data/launches.jsonl`).
//!
//! Run: `cargo bench -p warden-policy --bench evaluate`. Method and figures: docs/benchmarks.md.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde::Deserialize;
use std::hint::black_box;
use warden_policy::{Catalog, Exception, Policy, ProcessFacts, evaluate};

#[derive(Deserialize)]
struct Case {
    name: String,
    facts: ProcessFacts,
    /// The launch's own exceptions (the bypass-under-exception cases).
    #[serde(default)]
    exceptions: Vec<Exception>,
}

fn corpus() -> Vec<Case> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/launches.jsonl"))
        .expect("corpus readable");
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).expect("corpus line")).collect()
}

fn bench(c: &mut Criterion) {
    let policy = Policy::embedded();
    let catalog: Catalog = policy.catalog();
    let cases = corpus();
    let now = 1_800_000_000;

    let mut group = c.benchmark_group("evaluate");
    group.throughput(Throughput::Elements(cases.len() as u64));
    group.bench_function(BenchmarkId::new("whole-corpus", cases.len()), |b| {
        b.iter(|| {
            for case in &cases {
                black_box(evaluate(&policy, &catalog, &case.exceptions, black_box(&case.facts), now));
            }
        })
    });
    group.throughput(Throughput::Elements(1));
    // The common case on a real machine: an exec that is not an AI tool at all.
    for name in [
        "cargo build",
        "claude via npm (node cli.js)",
        "claude native installer binary",
        "pressly goose migrations up",
        // Risky modes: the launch is read with the tool's option grammar.
        "risky: codex -c overrides sandbox_mode and approval_policy",
        "risky: claude --settings file that sets bypassPermissions",
        "not risky: qwen prompt text containing --yolo",
    ] {
        let case = cases.iter().find(|c| c.name == name).expect("named case in corpus");
        group.bench_function(BenchmarkId::new("one", name), |b| {
            b.iter(|| black_box(evaluate(&policy, &catalog, &case.exceptions, black_box(&case.facts), now)))
        });
    }
    group.finish();

    // Compiling the catalog happens once per policy change, never per exec.
    c.bench_function("compile-catalog", |b| b.iter(|| black_box(policy.catalog())));
}

criterion_group!(benches, bench);
criterion_main!(benches);
