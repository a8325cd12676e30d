//! The console's fleet views: the overview (launches per day by tool and verdict, the adoption
//! curve, devices, pending requests, alerts), each tool across the fleet, one tool's footprint
//! ("where was it installed or used, and is it gone now?"), and the exception report.
//!
//! The views read two running tallies kept in the transaction that stores launches
//! ([`count_launches`]): `launch_counts` per (day, tool, verdict) and `tool_use` per (device,
//! tool) — so a page costs the same at a million events as at a thousand, and the counts outlive
//! the events retention removes.

use crate::auth::AdminCaller;
use crate::export::{self, Format};
use crate::extract::QueryParams;
use crate::failure::{Answer, Failure};
use crate::{AppState, alerts, exceptions, now, policies};
use axum::extract::{Path, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use warden_api::{
    AdoptionPoint, DailyLaunches, ExceptionReport, ExceptionState, FleetDevices, InventoryReport, Overview, Tally,
    ToolFootprint, ToolOnDevice, ToolSummaries, ToolSummary, Verdict, VerdictTotal, VersionCount,
};

pub(crate) const DAY_MS: i64 = 24 * 3600 * 1000;

/// Adds launches just stored for `device_id` — (event, the time it is filed under, ms) — to the
/// running tallies, inside the storing transaction.
pub(crate) async fn count_launches(
    transaction: &mut sqlx::Transaction<'_, sqlx::Any>,
    device_id: &str,
    launches: &[(&warden_api::LaunchEvent, i64)],
) -> Result<(), sqlx::Error> {
    let mut per_day: BTreeMap<(i64, &str, Verdict), i64> = BTreeMap::new();
    // tool → (launches, blocked, newest filed time)
    let mut per_tool: BTreeMap<&str, (i64, i64, i64)> = BTreeMap::new();
    for (launch, at_ms) in launches {
        let verdict = launch.verdict();
        let tool = launch.tool.as_deref().unwrap_or("");
        *per_day.entry((at_ms.div_euclid(DAY_MS), tool, verdict)).or_default() += 1;
        if !tool.is_empty() {
            let entry = per_tool.entry(tool).or_insert((0, 0, i64::MIN));
            entry.0 += 1;
            entry.1 += i64::from(verdict == Verdict::Blocked);
            entry.2 = entry.2.max(*at_ms);
        }
    }
    for ((day, tool, verdict), count) in per_day {
        sqlx::query(
            "INSERT INTO launch_counts (day, tool, verdict, count) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (day, tool, verdict) DO UPDATE SET count = launch_counts.count + $4",
        )
        .bind(day)
        .bind(tool)
        .bind(verdict.as_str())
        .bind(count)
        .execute(&mut **transaction)
        .await?;
    }
    for (tool, (count, blocked, newest)) in per_tool {
        sqlx::query(
            "INSERT INTO tool_use (device_id, tool, launches, blocked, last_at_ms) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (device_id, tool) DO UPDATE SET launches = tool_use.launches + $3, \
             blocked = tool_use.blocked + $4, \
             last_at_ms = CASE WHEN tool_use.last_at_ms > $5 THEN tool_use.last_at_ms ELSE $5 END",
        )
        .bind(device_id)
        .bind(tool)
        .bind(count)
        .bind(blocked)
        .bind(newest)
        .execute(&mut **transaction)
        .await?;
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverviewQuery {
    /// Days shown, today included (default 30, at most 366).
    #[serde(default)]
    days: Option<u32>,
    /// Only this tool's launches.
    #[serde(default)]
    tool: Option<String>,
}

/// `GET /api/v1/admin/overview?days=&tool=&format=` (CSV: the daily launch counts).
#[utoipa::path(
    get,
    path = "/api/v1/admin/overview",
    tag = "admin",
    summary = "The fleet at a glance: launches per day by tool and verdict, the adoption curve (sanctioned assistant against blocked attempts), devices, pending requests, recent alerts (CSV: the daily launch counts)",
    params(
        ("days" = Option<i64>, Query, description = "Days shown, today included: 1–366, default 30"),
        ("tool" = Option<String>, Query, description = "Only this tool's launches"),
        ("format" = Option<crate::export::Format>, Query, description = "json (default) or csv"),
    ),
    responses(
        (status = 200, description = "The overview", content((warden_api::Overview = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Unknown or malformed query parameter", body = warden_api::ApiError),
        crate::openapi::AdminAuthErrors,
        (status = 422, description = "days out of range", body = warden_api::ApiError),
    ),
    security(("admin" = [])),
)]
pub async fn overview(
    State(state): State<AppState>,
    _admin: AdminCaller,
    format: Format,
    QueryParams(query): QueryParams<OverviewQuery>,
) -> Answer<Response> {
    let days = i64::from(query.days.unwrap_or(30));
    if !(1..=366).contains(&days) {
        return Err(Failure::invalid("days", "days must be between 1 and 366"));
    }
    let now = now();
    let until_day = (now * 1000).div_euclid(DAY_MS);
    let since_day = until_day - days + 1;
    let mut sql = String::from("SELECT day, tool, verdict, count FROM launch_counts WHERE day >= $1 AND day <= $2");
    if query.tool.is_some() {
        sql.push_str(" AND tool = $3");
    }
    sql.push_str(" ORDER BY day, tool, verdict");
    let mut select = sqlx::query_as::<_, (i64, String, String, i64)>(&sql).bind(since_day).bind(until_day);
    if let Some(tool) = &query.tool {
        select = select.bind(tool);
    }
    let rows = select.fetch_all(&state.store.pool).await?;
    let mut launches = Vec::with_capacity(rows.len());
    let mut adoption: BTreeMap<i64, AdoptionPoint> =
        (since_day..=until_day).map(|day| (day, AdoptionPoint { day, sanctioned: 0, blocked: 0, warned: 0 })).collect();
    let mut totals: BTreeMap<Verdict, i64> = Verdict::ALL.into_iter().map(|v| (v, 0)).collect();
    for (day, tool, verdict, count) in rows {
        // A class this server does not know (a newer replica's) reads as blocked: the strictest.
        let verdict = Verdict::parse(&verdict).unwrap_or(Verdict::Blocked);
        *totals.entry(verdict).or_default() += count;
        if let Some(point) = adoption.get_mut(&day) {
            match verdict {
                Verdict::Sanctioned => point.sanctioned += count,
                Verdict::Blocked => point.blocked += count,
                Verdict::Warned => point.warned += count,
                _ => {}
            }
        }
        launches.push(DailyLaunches { day, tool, verdict, count });
    }
    let silent_before = now - 2 * state.sync_interval.as_secs() as i64;
    let (enrolled, silent, revoked): (i64, i64, i64) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(CASE WHEN revoked_at IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT), \
                CAST(COALESCE(SUM(CASE WHEN revoked_at IS NULL AND last_seen_at < $1 THEN 1 ELSE 0 END), 0) AS BIGINT), \
                CAST(COALESCE(SUM(CASE WHEN revoked_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT) FROM devices",
    )
    .bind(silent_before)
    .fetch_one(&state.store.pool)
    .await?;
    let (pending_requests,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM exception_requests WHERE state = 'pending'")
        .fetch_one(&state.store.pool)
        .await?;
    let recent_alerts = alerts::count_since(&state, now - 24 * 3600).await?;
    let overview = Overview {
        since_day,
        until_day,
        launches,
        adoption: adoption.into_values().collect(),
        totals: totals.into_iter().map(|(verdict, count)| VerdictTotal { verdict, count }).collect(),
        devices: FleetDevices { enrolled, silent, revoked },
        pending_requests,
        recent_alerts,
    };
    export::answer(format, overview, |o| export::csv(&o.launches, "launches-per-day.csv"))
}

/// Launches per tool on days `[since_day, until_day)` (UTC days since the epoch), optionally only
/// one verdict.
async fn launches_per_tool(
    state: &AppState,
    since_day: i64,
    until_day: i64,
    verdict: Option<Verdict>,
) -> Result<HashMap<String, i64>, sqlx::Error> {
    let mut sql = String::from(
        "SELECT tool, CAST(SUM(count) AS BIGINT) FROM launch_counts WHERE tool <> '' AND day >= $1 AND day < $2",
    );
    if verdict.is_some() {
        sql.push_str(" AND verdict = $3");
    }
    sql.push_str(" GROUP BY tool");
    let mut select = sqlx::query_as::<_, (String, i64)>(&sql).bind(since_day).bind(until_day);
    if let Some(verdict) = verdict {
        select = select.bind(verdict.as_str());
    }
    Ok(select.fetch_all(&state.store.pool).await?.into_iter().collect())
}

/// Devices per tool whose newest launch of it is at or after `since_ms`.
async fn devices_using(state: &AppState, since_ms: i64) -> Result<HashMap<String, i64>, sqlx::Error> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT tool, COUNT(*) FROM tool_use WHERE last_at_ms >= $1 GROUP BY tool")
            .bind(since_ms)
            .fetch_all(&state.store.pool)
            .await?;
    Ok(rows.into_iter().collect())
}

/// The current inventory of every device still in the fleet: (device, hostname, user, report).
async fn current_inventories(state: &AppState) -> Answer<Vec<(String, String, String, InventoryReport)>> {
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT d.id, d.hostname, d.username, i.report FROM device_inventory i JOIN devices d ON d.id = i.device_id \
         WHERE d.revoked_at IS NULL",
    )
    .fetch_all(&state.store.pool)
    .await?;
    rows.into_iter()
        .map(|(id, hostname, user, text)| {
            let report = serde_json::from_str(&text).map_err(Failure::internal)?;
            Ok((id, hostname, user, report))
        })
        .collect()
}

/// One tool summary as a CSV row (versions joined as `version×devices`).
#[derive(Debug, Serialize)]
struct ToolRow<'a> {
    tool: &'a str,
    installed_devices: i64,
    used_7d: i64,
    used_30d: i64,
    used_90d: i64,
    blocked_30d: i64,
    launches_per_day_before: f64,
    launches_per_day_since: f64,
    versions: String,
}

/// `GET /api/v1/admin/tools?format=`: every tool installed or launched in the last 90 days.
#[utoipa::path(
    get,
    path = "/api/v1/admin/tools",
    tag = "admin",
    summary = "Every AI tool installed or launched in the fleet: devices with it installed, devices that used it in 7/30/90 days, blocked launches, versions, the trend since the policy was activated",
    params(
        ("format" = Option<crate::export::Format>, Query, description = "json (default) or csv"),
    ),
    responses(
        (status = 200, description = "Tools", content((warden_api::ToolSummaries = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Unknown or malformed query parameter", body = warden_api::ApiError),
        crate::openapi::AdminAuthErrors,
        (status = 422, description = "An invalid query parameter (e.g. `format` other than json or csv)", body = warden_api::ApiError),
    ),
    security(("admin" = [])),
)]
pub async fn tools(
    State(state): State<AppState>,
    _admin: AdminCaller,
    format: Format,
    _filters: QueryParams<crate::extract::NoFilters>,
) -> Answer<Response> {
    let now_ms = now() * 1000;
    let mut installed: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    let mut versions: BTreeMap<String, BTreeMap<String, BTreeSet<&str>>> = BTreeMap::new();
    let inventories = current_inventories(&state).await?;
    for (device, _, _, report) in &inventories {
        for install in &report.tools {
            installed.entry(install.tool.clone()).or_default().insert(device);
            versions
                .entry(install.tool.clone())
                .or_default()
                .entry(install.version.clone().unwrap_or_default())
                .or_default()
                .insert(device);
        }
    }
    let used_7d = devices_using(&state, now_ms - 7 * DAY_MS).await?;
    let used_30d = devices_using(&state, now_ms - 30 * DAY_MS).await?;
    let used_90d = devices_using(&state, now_ms - 90 * DAY_MS).await?;
    let today = now_ms.div_euclid(DAY_MS);
    let blocked_30d = launches_per_tool(&state, today - 29, today + 1, Some(Verdict::Blocked)).await?;
    let activated_at = policies::activated_at(&state).await?;
    // Whole days on either side of the activation day, so neither side counts a partial day.
    let (before, since, since_days) = match activated_at {
        Some(at) => {
            let day = (at * 1000).div_euclid(DAY_MS);
            let from = (day + 1).max(today - 29);
            (
                launches_per_tool(&state, day - 30, day, None).await?,
                launches_per_tool(&state, from, today + 1, None).await?,
                (today + 1 - from).max(1) as f64,
            )
        }
        None => (HashMap::new(), HashMap::new(), 1.0),
    };
    let names: BTreeSet<&String> = installed.keys().chain(used_90d.keys()).collect();
    let count = |map: &HashMap<String, i64>, tool: &str| map.get(tool).copied().unwrap_or(0);
    let tools = names
        .into_iter()
        .map(|tool| {
            let mut versions: Vec<VersionCount> = versions
                .get(tool)
                .map(|by_version| {
                    by_version
                        .iter()
                        .map(|(version, devices)| VersionCount {
                            version: version.clone(),
                            devices: devices.len() as i64,
                        })
                        .collect()
                })
                .unwrap_or_default();
            versions.sort_by(|a, b| b.devices.cmp(&a.devices).then_with(|| a.version.cmp(&b.version)));
            ToolSummary {
                tool: tool.clone(),
                installed_devices: installed.get(tool).map_or(0, |d| d.len() as i64),
                used_7d: count(&used_7d, tool),
                used_30d: count(&used_30d, tool),
                used_90d: count(&used_90d, tool),
                blocked_30d: count(&blocked_30d, tool),
                launches_per_day_before: count(&before, tool) as f64 / 30.0,
                launches_per_day_since: count(&since, tool) as f64 / since_days,
                versions,
            }
        })
        .collect();
    let summaries = ToolSummaries { policy_activated_at: activated_at, tools };
    export::answer(format, summaries, |s| {
        let rows: Vec<ToolRow> = s
            .tools
            .iter()
            .map(|t| ToolRow {
                tool: &t.tool,
                installed_devices: t.installed_devices,
                used_7d: t.used_7d,
                used_30d: t.used_30d,
                used_90d: t.used_90d,
                blocked_30d: t.blocked_30d,
                launches_per_day_before: t.launches_per_day_before,
                launches_per_day_since: t.launches_per_day_since,
                versions: t
                    .versions
                    .iter()
                    .map(|v| format!("{}×{}", v.version, v.devices))
                    .collect::<Vec<_>>()
                    .join(" "),
            })
            .collect();
        export::csv(&rows, "tools.csv")
    })
}

/// `LIKE` pattern matching a stored inventory report that lists `tool` (`"tool":"<id>"`, as
/// serde writes `InstalledTool`), with `%`, `_` and `\` escaped.
fn report_lists(tool: &str) -> String {
    let quoted = serde_json::to_string(tool).unwrap_or_default();
    let escaped: String = quoted
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!("%\"tool\":{escaped}%")
}

/// `GET /api/v1/admin/tools/{id}?format=`: every device where the tool is or was installed, or was
/// launched; still-installed first (CSV: the devices).
#[utoipa::path(
    get,
    path = "/api/v1/admin/tools/{id}",
    tag = "admin",
    summary = "Where one tool is and was: every device with it installed now, removed since, or launched, still-installed first (CSV: the devices)",
    params(
        ("id" = String, Path, description = "Catalog id (claude-code)"),
        ("format" = Option<crate::export::Format>, Query, description = "json (default) or csv"),
    ),
    responses(
        (status = 200, description = "The tool's footprint", content((warden_api::ToolFootprint = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Unknown or malformed query parameter", body = warden_api::ApiError),
        crate::openapi::AdminAuthErrors,
        (status = 422, description = "Not a tool id (1–100 printable characters)", body = warden_api::ApiError),
    ),
    security(("admin" = [])),
)]
pub async fn footprint(
    State(state): State<AppState>,
    _admin: AdminCaller,
    format: Format,
    Path(tool): Path<String>,
) -> Answer<Response> {
    if tool.is_empty() || tool.chars().count() > 100 || tool.chars().any(char::is_control) {
        return Err(Failure::invalid("id", "a tool id is 1–100 printable characters"));
    }
    let now_ms = now() * 1000;
    let mut devices: BTreeMap<String, ToolOnDevice> = BTreeMap::new();
    let blank = |device_id: &str, hostname: &str, user: &str| ToolOnDevice {
        device_id: device_id.to_owned(),
        hostname: hostname.to_owned(),
        user: user.to_owned(),
        status: "used".into(),
        versions: String::new(),
        paths: String::new(),
        first_seen_at: None,
        removed_at: None,
        launches: 0,
        blocked: 0,
        last_launch_at_ms: None,
    };
    for (device_id, hostname, user, report) in current_inventories(&state).await? {
        let installs: Vec<_> = report.tools.iter().filter(|t| t.tool == tool).collect();
        if installs.is_empty() {
            continue;
        }
        let mut row = blank(&device_id, &hostname, &user);
        row.status = "installed".into();
        row.versions = installs
            .iter()
            .filter_map(|t| t.version.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join(", ");
        row.paths = installs.iter().map(|t| t.path.as_str()).collect::<Vec<_>>().join(", ");
        devices.insert(device_id, row);
    }
    // The history, in order per device, marked by whether each report lists the tool.
    let history: Vec<(String, i64, i64, String, String)> = sqlx::query_as(
        "SELECT h.device_id, h.reported_at, CAST(CASE WHEN h.report LIKE $1 ESCAPE '\\' THEN 1 ELSE 0 END AS BIGINT), \
         d.hostname, d.username FROM inventory_history h JOIN devices d ON d.id = h.device_id \
         WHERE d.revoked_at IS NULL ORDER BY h.device_id, h.seq",
    )
    .bind(report_lists(&tool))
    .fetch_all(&state.store.pool)
    .await?;
    let mut last_listed: HashMap<String, bool> = HashMap::new();
    for (device_id, reported_at, lists, hostname, user) in history {
        let lists = lists == 1;
        let had = last_listed.insert(device_id.clone(), lists).unwrap_or(false);
        if lists {
            let row = devices.entry(device_id.clone()).or_insert_with(|| blank(&device_id, &hostname, &user));
            row.first_seen_at.get_or_insert(reported_at);
            if row.status == "removed" {
                row.removed_at = None;
            }
        } else if had {
            // Installed in the previous report, gone in this one.
            let row = devices.entry(device_id.clone()).or_insert_with(|| blank(&device_id, &hostname, &user));
            if row.status != "installed" {
                row.status = "removed".into();
                row.removed_at = Some(reported_at);
            }
        }
    }
    let launched: Vec<(String, String, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT u.device_id, d.hostname, d.username, u.launches, u.blocked, u.last_at_ms \
         FROM tool_use u JOIN devices d ON d.id = u.device_id WHERE u.tool = $1",
    )
    .bind(&tool)
    .fetch_all(&state.store.pool)
    .await?;
    for (device_id, hostname, user, launches, blocked, last) in launched {
        let row = devices.entry(device_id.clone()).or_insert_with(|| blank(&device_id, &hostname, &user));
        row.launches = launches;
        row.blocked = blocked;
        row.last_launch_at_ms = Some(last);
    }
    let rank = |status: &str| match status {
        "installed" => 0,
        "removed" => 1,
        _ => 2,
    };
    let mut devices: Vec<ToolOnDevice> = devices.into_values().collect();
    devices.sort_by(|a, b| {
        rank(&a.status)
            .cmp(&rank(&b.status))
            .then_with(|| b.last_launch_at_ms.cmp(&a.last_launch_at_ms))
            .then_with(|| a.hostname.cmp(&b.hostname))
    });
    let footprint = ToolFootprint {
        installed_now: devices.iter().filter(|d| d.status == "installed").count() as i64,
        removed: devices.iter().filter(|d| d.status == "removed").count() as i64,
        used_30d: devices.iter().filter(|d| d.last_launch_at_ms.is_some_and(|at| at >= now_ms - 30 * DAY_MS)).count()
            as i64,
        last_launch_at_ms: devices.iter().filter_map(|d| d.last_launch_at_ms).max(),
        tool: tool.clone(),
        devices,
    };
    export::answer(format, footprint, |f| export::csv(&f.devices, &format!("{}-devices.csv", file_safe(&tool))))
}

/// A tool id fit for a download's file name.
fn file_safe(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// Only requests in this state (`pending`, `approved`, …).
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    tool: Option<String>,
    /// Only requests this approver decided.
    #[serde(default)]
    approver: Option<String>,
    /// Filed at or after (seconds since the epoch).
    #[serde(default)]
    since: Option<i64>,
    /// Filed before.
    #[serde(default)]
    until: Option<i64>,
}

/// The justification as counted: case and runs of white space do not make a new one.
fn normalized(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

fn tallies(counts: BTreeMap<String, i64>, at_most: usize) -> Vec<Tally> {
    let mut list: Vec<Tally> = counts.into_iter().map(|(value, count)| Tally { value, count }).collect();
    list.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    list.truncate(at_most);
    list
}

/// The value at quantile `q` of sorted `values` (nearest rank).
fn quantile(sorted: &[i64], q: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// One report line as CSV: which list, the value, its count.
#[derive(Debug, Serialize)]
struct ReportRow<'a> {
    section: &'static str,
    value: &'a str,
    count: i64,
}

/// `GET /api/v1/admin/exceptions/report?state=&tool=&approver=&since=&until=&format=`
#[utoipa::path(
    get,
    path = "/api/v1/admin/exceptions/report",
    tag = "admin",
    summary = "Exception requests by state, tool and approver, time to decision, and the scopes and justifications asked most (CSV: section, value, count)",
    params(
        ("state" = Option<String>, Query, description = "pending, approved, denied, withdrawn, expired, revoked or all"),
        ("tool" = Option<String>, Query),
        ("approver" = Option<String>, Query, description = "Only requests this approver decided"),
        ("since" = Option<i64>, Query, description = "Filed at or after (seconds since the epoch)"),
        ("until" = Option<i64>, Query, description = "Filed before"),
        ("format" = Option<crate::export::Format>, Query, description = "json (default) or csv"),
    ),
    responses(
        (status = 200, description = "The report", content((warden_api::ExceptionReport = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Unknown or malformed query parameter", body = warden_api::ApiError),
        crate::openapi::AdminAuthErrors,
        (status = 422, description = "Unknown state", body = warden_api::ApiError),
    ),
    security(("admin" = [])),
)]
pub async fn exception_report(
    State(state): State<AppState>,
    _admin: AdminCaller,
    format: Format,
    QueryParams(query): QueryParams<ReportQuery>,
) -> Answer<Response> {
    let wanted = match query.state.as_deref() {
        None | Some("") | Some("all") => None,
        Some(text) => Some(ExceptionState::parse(text).ok_or_else(|| {
            Failure::invalid("state", "state must be pending, approved, denied, withdrawn, expired, revoked or all")
        })?),
    };
    let now = now();
    let records = exceptions::records_filed(
        &state,
        query.tool.as_deref(),
        query.since.unwrap_or(0),
        query.until.unwrap_or(i64::MAX),
        now,
    )
    .await?;
    let mut by_state = BTreeMap::new();
    let mut by_tool = BTreeMap::new();
    let mut by_approver = BTreeMap::new();
    let mut scopes = BTreeMap::new();
    let mut justifications = BTreeMap::new();
    let mut waits = Vec::new();
    let mut total = 0;
    for record in &records {
        if wanted.is_some_and(|w| w != record.state) {
            continue;
        }
        let approver = record.decided_by.as_deref().filter(|by| *by != exceptions::SYSTEM_ACTOR);
        if query.approver.as_deref().is_some_and(|a| approver != Some(a)) {
            continue;
        }
        total += 1;
        *by_state.entry(record.state.as_str().to_owned()).or_default() += 1;
        *by_tool.entry(record.tool.clone()).or_default() += 1;
        if let (Some(approver), Some(decided_at)) = (approver, record.decided_at) {
            *by_approver.entry(approver.to_owned()).or_default() += 1;
            waits.push(decided_at - record.created_at);
        }
        *scopes.entry(record.scope.clone().unwrap_or_else(|| "(everywhere)".into())).or_default() += 1;
        *justifications.entry(normalized(&record.justification)).or_default() += 1;
    }
    waits.sort_unstable();
    let report = ExceptionReport {
        total,
        by_state: tallies(by_state, usize::MAX),
        by_tool: tallies(by_tool, usize::MAX),
        by_approver: tallies(by_approver, usize::MAX),
        decision_seconds_p50: quantile(&waits, 0.5),
        decision_seconds_p90: quantile(&waits, 0.9),
        top_scopes: tallies(scopes, 20),
        top_justifications: tallies(justifications, 20),
    };
    export::answer(format, report, |r| {
        let sections: [(&'static str, &Vec<Tally>); 5] = [
            ("state", &r.by_state),
            ("tool", &r.by_tool),
            ("approver", &r.by_approver),
            ("scope", &r.top_scopes),
            ("justification", &r.top_justifications),
        ];
        let rows = sections
            .into_iter()
            .flat_map(|(section, list)| list.iter().map(move |t| (section, t)))
            .map(|(section, t)| ReportRow { section, value: &t.value, count: t.count })
            .collect::<Vec<_>>();
        export::csv(&rows, "exception-report.csv")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_take_the_nearest_rank() {
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[7], 0.9), Some(7));
        let values: Vec<i64> = (1..=10).collect();
        assert_eq!(quantile(&values, 0.5), Some(5));
        assert_eq!(quantile(&values, 0.9), Some(9));
    }

    #[test]
    fn justifications_count_alike_whatever_their_case_and_spacing() {
        assert_eq!(normalized("  Need it for\tthe  SDK "), "need it for the sdk");
    }

    #[test]
    fn report_patterns_escape_like_wildcards() {
        assert_eq!(report_lists("claude-code"), "%\"tool\":\"claude-code\"%");
        assert_eq!(report_lists("a_b%"), "%\"tool\":\"a\\_b\\%\"%");
    }
}
