//! A synthetic fleet written straight into the database (`warden-seed`): devices, their
//! inventories and inventory history, launch events over the last days, and exception requests —
//! for the console's browser test and the fleet benchmarks, since the device API rightly refuses
//! months of history from one client at that rate.
//!
//! Reproducible from `seed`; returns [`SeedTruth`], the counts the generator knows from its own
//! rows (never read back through the server's SQL), for tests to compare the console against.
//! No generated event lies within ten minutes of the 7/30/90-day cut-offs, so the counts stay
//! true for as long as a test runs (until the next UTC midnight moves the calendar windows).

use crate::fleet::DAY_MS;
use crate::store::Store;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use warden_api::{Event, InstalledTool, InventoryReport, LaunchEvent, Outcome, Verdict};
use warden_policy::Action;

/// How big a fleet to make.
#[derive(Debug, Clone, Copy)]
pub struct SeedSpec {
    pub devices: usize,
    pub events: usize,
    /// Events spread over this many days before `now` (at most 89, so all are in a 90-day view).
    pub days: u32,
    pub seed: u64,
    /// Seconds since the epoch the fleet is generated around.
    pub now: i64,
}

/// What the generator wrote, counted from its own rows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SeedTruth {
    pub devices: usize,
    pub events: usize,
    /// Enrolled devices last heard from more than two days ago (silent under any sync interval
    /// up to a day), and revoked devices.
    pub silent_devices: usize,
    pub revoked_devices: usize,
    /// Launches per verdict in the overview's calendar windows (`days=7`, `30`, `90`).
    pub verdicts_7d: BTreeMap<String, i64>,
    pub verdicts_30d: BTreeMap<String, i64>,
    pub verdicts_90d: BTreeMap<String, i64>,
    /// Per tool, as the tools view counts it.
    pub tools: BTreeMap<String, ToolTruth>,
    pub exceptions: usize,
    pub pending_requests: usize,
    pub exceptions_by_state: BTreeMap<String, i64>,
    pub exceptions_by_approver: BTreeMap<String, i64>,
    /// The most asked-for scope and how often.
    pub top_scope: (String, i64),
}

/// One tool across the synthetic fleet.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ToolTruth {
    /// Devices (not revoked) whose current inventory lists it.
    pub installed_devices: i64,
    /// Devices (not revoked) whose history listed it and whose current inventory does not.
    pub removed_devices: i64,
    /// Devices that launched it in the last 7, 30 and 90 days (rolling).
    pub used_7d: i64,
    pub used_30d: i64,
    pub used_90d: i64,
    /// Blocked launches on the last 30 UTC calendar days, today included.
    pub blocked_30d: i64,
}

/// The tools the fleet uses, the verdicts their launches get, and how common each is at the start
/// and at the end of the period (the sanctioned assistant gains, the banned tools fade).
const TOOLS: &[(&str, &str, f64, f64)] = &[
    ("qwen-code", "sanctioned", 0.05, 0.45),
    ("claude-code", "blocked", 0.35, 0.12),
    ("codex", "blocked", 0.15, 0.06),
    ("gemini-cli", "warned", 0.15, 0.12),
    ("cursor", "allowed", 0.15, 0.15),
    ("copilot", "allowed", 0.15, 0.10),
];
const APPROVERS: &[&str] = &["ana@corp.example", "raj@corp.example", "lee@corp.example"];
const SCOPES: &[&str] =
    &["/home/dev/src/payments", "/home/dev/src/vendor-sdk", "/home/dev/src/mobile-app", "/home/dev/src/infra"];
const JUSTIFICATIONS: &[&str] = &[
    "The internal assistant cannot read our Terraform modules",
    "the internal assistant cannot read our terraform modules",
    "Need agentic refactoring across the whole monorepo",
    "Customer escalation: reproduce a bug with the vendor SDK",
    "Evaluating the tool for the platform team",
];
const MARGIN_MS: i64 = 10 * 60 * 1000;

fn seed_error(error: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::Protocol(format!("seeding: {error}"))
}

/// Writes the fleet into `store` (already migrated and bootstrapped by [`crate::prepare`]).
pub async fn seed(store: &Store, spec: SeedSpec) -> Result<SeedTruth, sqlx::Error> {
    let mut rng = fastrand::Rng::with_seed(spec.seed);
    let now_ms = spec.now * 1000;
    let days = i64::from(spec.days.clamp(1, 89));
    let mut truth = SeedTruth { devices: spec.devices, events: spec.events, ..SeedTruth::default() };
    // Devices: ~4 % silent for days, ~2 % revoked.
    let mut device_rows = Vec::with_capacity(spec.devices);
    for i in 0..spec.devices {
        let revoked = rng.u32(0..100) < 2;
        let silent = !revoked && rng.u32(0..100) < 4;
        let last_seen = if silent { spec.now - 2 * 86400 - rng.i64(0..20 * 86400) } else { spec.now - rng.i64(0..600) };
        truth.silent_devices += usize::from(silent);
        truth.revoked_devices += usize::from(revoked);
        device_rows.push((format!("dev_seed{i:05}"), format!("host-{i:05}"), format!("dev{i:05}"), last_seen, revoked));
    }
    {
        let _writer = store.write_guard().await;
        let mut transaction = store.pool.begin().await?;
        for (id, hostname, user, last_seen, revoked) in &device_rows {
            sqlx::query(
                "INSERT INTO devices (id, token_hash, hostname, username, platform, agent_version, enrolled_at, \
                 last_seen_at, revoked_at, service_status, service_at_ms, service_version) \
                 VALUES ($1, $2, $3, $4, 'linux', '0.1.0', $5, $6, $7, 'running', $8, '0.1.0')",
            )
            .bind(id)
            .bind(format!("seeded device {id}: no token"))
            .bind(hostname)
            .bind(user)
            .bind(spec.now - 100 * 86400)
            .bind(last_seen)
            .bind(revoked.then_some(spec.now - 86400))
            .bind(last_seen * 1000)
            .execute(&mut *transaction)
            .await?;
        }
        transaction.commit().await?;
    }
    // Inventories: each device has some tools now; a quarter once had Claude Code and removed it.
    let mut installed_now: BTreeMap<&str, BTreeSet<usize>> = BTreeMap::new();
    {
        let _writer = store.write_guard().await;
        let mut transaction = store.pool.begin().await?;
        for (index, (id, _, user, _, revoked)) in device_rows.iter().enumerate() {
            let install = |tool: &str, version: &str| InstalledTool {
                tool: tool.to_owned(),
                user: user.clone(),
                kind: "npm-package".into(),
                place: Some("npm".into()),
                path: format!("/home/{user}/.npm-global/lib/node_modules/{tool}"),
                version: Some(version.to_owned()),
            };
            let mut now_tools = Vec::new();
            for (tool, ..) in TOOLS {
                if rng.u32(0..100) < 35 {
                    let version = if rng.bool() { "1.2.0" } else { "1.3.1" };
                    now_tools.push(install(tool, version));
                }
            }
            let had_claude = !now_tools.iter().any(|t| t.tool == "claude-code") && rng.u32(0..100) < 25;
            let mut reports = Vec::new();
            if had_claude {
                let mut before = now_tools.clone();
                before.push(install("claude-code", "2.1.37"));
                reports.push((spec.now - 60 * 86400, before));
            }
            reports.push((spec.now - rng.i64(3600..20 * 86400), now_tools.clone()));
            if !revoked {
                for tool in &now_tools {
                    let name = TOOLS.iter().find(|(t, ..)| *t == tool.tool).map(|(t, ..)| *t).unwrap_or("");
                    installed_now.entry(name).or_default().insert(index);
                }
                if had_claude {
                    truth.tools.entry("claude-code".into()).or_default().removed_devices += 1;
                }
            }
            // Oldest first, as the device would have uploaded them.
            for (at, tools) in reports {
                let mut report = InventoryReport { scanned_at_ms: at * 1000, tools, mcp_servers: Vec::new() };
                report.sort();
                let text = serde_json::to_string(&report).map_err(seed_error)?;
                crate::inventory::record_change(&mut transaction, id, &report.digest(), &text, at).await?;
            }
        }
        transaction.commit().await?;
    }
    for (tool, devices) in installed_now {
        truth.tools.entry(tool.to_owned()).or_default().installed_devices = devices.len() as i64;
    }
    // Launch events.
    let today = now_ms.div_euclid(DAY_MS);
    let cutoffs = [7, 30, 90].map(|d| now_ms - d * DAY_MS);
    let mut used: BTreeMap<(&str, i64), BTreeSet<usize>> = BTreeMap::new();
    let mut rows = Vec::with_capacity(1000);
    let mut written = 0;
    while written < spec.events {
        let at_ms = loop {
            let at = now_ms - 60_000 - rng.i64(0..days * DAY_MS - 60_000);
            if cutoffs.iter().all(|cut| (at - cut).abs() > MARGIN_MS) {
                break at;
            }
        };
        let age = (now_ms - at_ms) as f64 / (days * DAY_MS) as f64;
        let weights: Vec<f64> = TOOLS.iter().map(|(_, _, old, new)| old * age + new * (1.0 - age)).collect();
        let mut pick = rng.f64() * weights.iter().sum::<f64>();
        let mut index = 0;
        while index + 1 < TOOLS.len() && pick >= weights[index] {
            pick -= weights[index];
            index += 1;
        }
        let (tool, usual, ..) = TOOLS[index];
        // A tenth of the blocked tool's launches run under an approved exception.
        let verdict = match usual {
            "blocked" if rng.u32(0..10) == 0 => Verdict::Exception,
            other => Verdict::parse(other).unwrap_or(Verdict::Allowed),
        };
        let device = rng.usize(0..spec.devices.max(1));
        let (device_id, _, user, _, _) = &device_rows[device];
        let (action, outcome, rule, exception) = match verdict {
            Verdict::Sanctioned => (Action::Allow, Outcome::Allowed, "sanctioned-assistant".to_owned(), None),
            Verdict::Allowed => (Action::Allow, Outcome::Allowed, format!("tool:{tool}"), None),
            Verdict::Warned => (Action::Warn, Outcome::Warned, format!("tool:{tool}"), None),
            Verdict::Blocked => (Action::Block, Outcome::Killed, format!("tool:{tool}"), None),
            Verdict::Exception => (
                Action::Allow,
                Outcome::Allowed,
                format!("exception:exc_seed{device:05}"),
                Some(format!("exc_seed{device:05}")),
            ),
        };
        let launch = LaunchEvent {
            id: format!("seed-{}-{written:08}", spec.seed),
            at_ms,
            pid: rng.u32(1000..4_000_000),
            user: Some(user.clone()),
            exe: format!("/home/{user}/.npm-global/bin/{tool}"),
            argv: vec![tool.to_owned()],
            cwd: None,
            tool: Some(tool.to_owned()),
            action,
            outcome,
            rule,
            reason: format!("seeded {verdict} launch"),
            exception,
            policy_version: Some("1".into()),
            source: "proc-connector".into(),
        };
        debug_assert_eq!(launch.verdict(), verdict);
        let day = at_ms.div_euclid(DAY_MS);
        for (window, counts) in
            [(7, &mut truth.verdicts_7d), (30, &mut truth.verdicts_30d), (90, &mut truth.verdicts_90d)]
        {
            if day > today - window {
                *counts.entry(verdict.as_str().to_owned()).or_default() += 1;
            }
        }
        for (window, cut) in [7, 30, 90].into_iter().zip(cutoffs) {
            if at_ms >= cut {
                used.entry((tool, window)).or_default().insert(device);
            }
        }
        if verdict == Verdict::Blocked && day > today - 30 {
            truth.tools.entry(tool.to_owned()).or_default().blocked_30d += 1;
        }
        rows.push((device_id.clone(), user.clone(), Event::Launch(launch)));
        written += 1;
        if rows.len() == 1000 || written == spec.events {
            insert_events(store, &rows, spec.now).await?;
            rows.clear();
        }
    }
    for ((tool, window), devices) in used {
        let entry = truth.tools.entry(tool.to_owned()).or_default();
        let count = devices.len() as i64;
        match window {
            7 => entry.used_7d = count,
            30 => entry.used_30d = count,
            _ => entry.used_90d = count,
        }
    }
    seed_exceptions(store, &mut rng, &device_rows, spec.now, &mut truth).await?;
    // The policy changed halfway through the period: the tools view's "since".
    sqlx::query(
        "INSERT INTO server_settings (name, value) VALUES ('active_policy_activated_at', $1) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .bind((spec.now - days * 86400 / 2).to_string())
    .execute(&store.pool)
    .await?;
    Ok(truth)
}

/// One multi-row INSERT per 100 events, the way uploads store them (verdict included).
async fn insert_events(store: &Store, rows: &[(String, String, Event)], now: i64) -> Result<(), sqlx::Error> {
    let _writer = store.write_guard().await;
    let mut transaction = store.pool.begin().await?;
    for chunk in rows.chunks(100) {
        let mut sql = String::from(
            "INSERT INTO events (id, device_id, kind, username, tool, action, at_ms, received_at, body, verdict) VALUES ",
        );
        for row in 0..chunk.len() {
            let base = row * 10;
            if row > 0 {
                sql.push_str(", ");
            }
            let placeholders: Vec<String> = (1..=10).map(|n| format!("${}", base + n)).collect();
            sql.push_str(&format!("({})", placeholders.join(", ")));
        }
        let mut query = sqlx::query(&sql);
        for (device_id, user, event) in chunk {
            let launch = event.as_launch();
            query = query
                .bind(event.id().to_owned())
                .bind(device_id.clone())
                .bind(event.kind().as_str())
                .bind(user.clone())
                .bind(event.tool().map(str::to_owned))
                .bind(launch.map(|l| l.action.as_str()))
                .bind(event.at_ms())
                .bind(now)
                .bind(event.payload_json())
                .bind(launch.map(|l| l.verdict().as_str()));
        }
        query.execute(&mut *transaction).await?;
    }
    // The tallies the console reads, per device, as uploads keep them.
    let mut per_device: BTreeMap<&str, Vec<(&LaunchEvent, i64)>> = BTreeMap::new();
    for (device_id, _, event) in rows {
        if let Some(launch) = event.as_launch() {
            per_device.entry(device_id).or_default().push((launch, launch.at_ms));
        }
    }
    for (device_id, launches) in per_device {
        crate::fleet::count_launches(&mut transaction, device_id, &launches).await?;
    }
    transaction.commit().await
}

/// Two requests per device on average, across every state.
async fn seed_exceptions(
    store: &Store,
    rng: &mut fastrand::Rng,
    devices: &[(String, String, String, i64, bool)],
    now: i64,
    truth: &mut SeedTruth,
) -> Result<(), sqlx::Error> {
    let mut scopes: BTreeMap<String, i64> = BTreeMap::new();
    let _writer = store.write_guard().await;
    let mut transaction = store.pool.begin().await?;
    for (index, (device_id, _, user, _, _)) in devices.iter().enumerate() {
        for n in 0..rng.usize(0..5) {
            let created = now - rng.i64(3600..80 * 86400);
            let state = ["pending", "approved", "denied", "expired", "withdrawn"][rng.usize(0..5)];
            let scope = SCOPES[rng.usize(0..SCOPES.len())];
            let justification = JUSTIFICATIONS[rng.usize(0..JUSTIFICATIONS.len())];
            let decided = matches!(state, "approved" | "denied" | "expired");
            let approver = APPROVERS[rng.usize(0..APPROVERS.len())];
            let decided_at = decided.then(|| created + rng.i64(60..3 * 86400).min(now - created));
            let (starts, expires) = match state {
                "approved" => (decided_at, Some(now + 86400)),
                "expired" => (decided_at, decided_at.map(|at| at + 3600)),
                _ => (None, None),
            };
            sqlx::query(
                "INSERT INTO exception_requests (id, device_id, client_id, username, tool, scope, justification, \
                 requested_seconds, state, created_at, decided_at, decided_by, comment, granted_seconds, starts_at, \
                 expires_at) VALUES ($1, $2, $3, $4, 'claude-code', $5, $6, 86400, $7, $8, $9, $10, NULL, $11, $12, $13)",
            )
            .bind(format!("exc_seed{index:05}_{n}"))
            .bind(device_id)
            .bind(format!("seed-{index}-{n}"))
            .bind(user)
            .bind(scope)
            .bind(justification)
            .bind(state)
            .bind(created)
            .bind(decided_at)
            .bind(decided.then_some(approver))
            .bind(decided.then_some(86400i64))
            .bind(starts)
            .bind(expires)
            .execute(&mut *transaction)
            .await?;
            truth.exceptions += 1;
            truth.pending_requests += usize::from(state == "pending");
            *truth.exceptions_by_state.entry(state.to_owned()).or_default() += 1;
            if decided {
                *truth.exceptions_by_approver.entry(approver.to_owned()).or_default() += 1;
            }
            *scopes.entry(scope.to_owned()).or_default() += 1;
        }
    }
    transaction.commit().await?;
    truth.top_scope = scopes.into_iter().max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0))).unwrap_or_default();
    Ok(())
}
