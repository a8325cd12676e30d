//! Detection quality on the corpus (tests/data/secrets.txt, tests/data/lookalikes.txt): recall over
//! synthetic secrets, precision against must-not-mask look-alikes, a finding counted by its line (the
//! same counting the benchmark uses for `detect-secrets`).

use std::collections::{BTreeMap, BTreeSet};
use warden_gateway::Detector;

/// One corpus case: the line (1-based) where its secret starts and the lines it spans.
#[derive(Debug)]
struct Case {
    kind: String,
    first: usize,
    last: usize,
}

fn data(name: &str) -> String {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// Blocks separated by blank lines, each opening with `# kind: …`.
fn secret_cases(text: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut current: Option<Case> = None;
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        if let Some(kind) = line.strip_prefix("# kind: ") {
            current = Some(Case { kind: kind.to_owned(), first: number + 1, last: number + 1 });
        } else if line.is_empty() {
            cases.extend(current.take());
        } else if let Some(case) = &mut current {
            case.last = number;
        }
    }
    cases.extend(current);
    cases
}

/// The lines (1-based) on which findings start.
fn finding_lines(detector: &Detector, text: &str) -> BTreeSet<usize> {
    let line_starts: Vec<usize> = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
    detector.find(text).iter().map(|f| line_starts.partition_point(|&s| s <= f.start)).collect()
}

#[test]
fn recall_and_precision_on_the_corpus() {
    let detector = Detector::new(None).expect("built-in rules compile");
    let secrets = data("secrets.txt");
    let cases = secret_cases(&secrets);
    let kinds: BTreeSet<&str> = cases.iter().map(|c| c.kind.as_str()).collect();
    assert!(cases.len() >= 200 && kinds.len() >= 30, "{} cases, {} kinds", cases.len(), kinds.len());

    let found = finding_lines(&detector, &secrets);
    let mut missed: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for case in &cases {
        if !found.contains(&case.first) {
            missed.entry(&case.kind).or_default().push(case.first);
        }
    }
    // Findings inside a case but not on its first line would be a wrong line (a false positive).
    let stray: Vec<usize> = found.iter().copied().filter(|line| !cases.iter().any(|c| c.first == *line)).collect();

    let lookalikes = data("lookalikes.txt");
    let negative_lines = lookalikes.lines().filter(|l| !l.is_empty() && !l.starts_with("# kind:")).count();
    assert!(negative_lines >= 200, "{negative_lines} look-alikes");
    let false_lines: Vec<(usize, &str)> = finding_lines(&detector, &lookalikes)
        .into_iter()
        .map(|line| (line, lookalikes.lines().nth(line - 1).unwrap_or("")))
        .collect();

    let true_positives = cases.len() - missed.values().map(Vec::len).sum::<usize>();
    let false_positives = stray.len() + false_lines.len();
    let recall = true_positives as f64 / cases.len() as f64;
    let precision = true_positives as f64 / (true_positives + false_positives) as f64;
    println!("recall {recall:.4} ({true_positives}/{}), precision {precision:.4}", cases.len());
    println!("stray lines {stray:?}, look-alikes masked {false_lines:?}");
    assert!(recall >= 0.98, "recall {recall:.4}; missed by kind (line numbers): {missed:?}");
    assert!(precision >= 0.99, "precision {precision:.4}; stray lines {stray:?}; look-alikes masked: {false_lines:#?}");
}

#[test]
fn every_kind_of_secret_is_found_at_least_once() {
    let detector = Detector::new(None).unwrap();
    let secrets = data("secrets.txt");
    let found = finding_lines(&detector, &secrets);
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    let cases = secret_cases(&secrets);
    for case in &cases {
        *by_kind.entry(&case.kind).or_default() += usize::from(found.contains(&case.first));
    }
    let never: Vec<&&str> = by_kind.iter().filter(|(_, n)| **n == 0).map(|(k, _)| k).collect();
    assert!(never.is_empty(), "kinds never found: {never:?}");
    // A multi-line case is one finding: a PEM block is masked whole, from BEGIN to END.
    let pem = cases.iter().find(|c| c.kind == "private-key" && c.last > c.first).expect("a multi-line PEM case");
    // `first`/`last` are 1-based, inclusive line numbers of the corpus file.
    let text: String =
        secrets.lines().skip(pem.first - 1).take(pem.last - pem.first + 1).collect::<Vec<_>>().join("\n");
    let findings = detector.find(&text);
    assert_eq!(findings.len(), 1);
    assert_eq!((findings[0].start, findings[0].end), (0, text.len()));
}
