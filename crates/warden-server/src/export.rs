//! Every admin list can be had as CSV: `?format=csv` (the default is JSON). The CSV is written
//! by the `csv` crate from flat row structs, one header line naming the fields.

use crate::failure::{Answer, Failure};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The query parameter [`Format`] is read from; the filter extractors skip it.
pub const FORMAT_PARAM: &str = "format";

/// The answer's format: `?format=json` (default) or `?format=csv`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Json,
    Csv,
}

impl<S: Send + Sync> FromRequestParts<S> for Format {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Failure> {
        let query = parts.uri.query().unwrap_or("");
        let wanted = form_urlencoded::parse(query.as_bytes()).find(|(name, _)| name == FORMAT_PARAM);
        match wanted.as_ref().map(|(_, value)| value.as_ref()) {
            None | Some("json") => Ok(Format::Json),
            Some("csv") => Ok(Format::Csv),
            Some(_) => Err(Failure::invalid(FORMAT_PARAM, "format must be json or csv")),
        }
    }
}

/// A cell a spreadsheet would run as a formula (`=HYPERLINK(…)` in a hostname a device sent)
/// gets a leading `'`, OWASP's advice for CSV injection; numbers like `-5` stay as they are.
fn defused(cell: &str) -> std::borrow::Cow<'_, str> {
    let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r']) && cell.parse::<f64>().is_err();
    if risky { format!("'{cell}").into() } else { cell.into() }
}

/// A JSON value as one CSV cell: text as it is, numbers and booleans written out, absent and
/// null empty, lists and objects as their JSON.
fn cell_text(value: Option<&serde_json::Value>) -> String {
    use serde_json::Value;
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(other) => other.to_string(),
    }
}

/// `rows` as a CSV download named `file_name`: a header line naming every field any row has
/// (sorted by name, as `serde_json` keeps objects; optional fields a row leaves out are empty
/// cells), then one line per row.
pub fn csv<T: Serialize>(rows: &[T], file_name: &str) -> Answer<Response> {
    let objects: Vec<serde_json::Map<String, serde_json::Value>> = rows
        .iter()
        .map(|row| match serde_json::to_value(row) {
            Ok(serde_json::Value::Object(object)) => Ok(object),
            Ok(_) => Err(Failure::internal("a CSV row must serialize as an object")),
            Err(error) => Err(Failure::internal(error)),
        })
        .collect::<Result<_, _>>()?;
    let mut header: Vec<&str> = Vec::new();
    for object in &objects {
        for name in object.keys() {
            if !header.contains(&name.as_str()) {
                header.push(name);
            }
        }
    }
    let mut writer = ::csv::Writer::from_writer(Vec::new());
    writer.write_record(&header).map_err(Failure::internal)?;
    for object in &objects {
        let cells = header.iter().map(|name| defused(&cell_text(object.get(*name))).into_owned());
        writer.write_record(cells).map_err(Failure::internal)?;
    }
    let bytes = writer.into_inner().map_err(|e| Failure::internal(e.to_string()))?;
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\""))
        .map_err(|e| Failure::internal(e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8")),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}

/// JSON as the value itself, or the CSV `csv_of` makes of it (with [`csv`]).
pub fn answer<V: Serialize>(format: Format, value: V, csv_of: impl FnOnce(&V) -> Answer<Response>) -> Answer<Response> {
    match format {
        Format::Json => Ok(axum::Json(value).into_response()),
        Format::Csv => csv_of(&value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Row<'a> {
        tool: &'a str,
        count: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        version: Option<&'a str>,
    }

    #[tokio::test]
    async fn rows_become_a_header_and_one_quoted_line_each_with_empty_cells_for_absent_fields() {
        let rows = [
            Row { tool: "claude-code", count: 3, version: None },
            Row { tool: "a,\"b\"", count: -2, version: Some("2.1") },
            Row { tool: "=HYPERLINK(\"http://x\")", count: 0, version: None },
            Row { tool: "@SUM(A1)", count: 1, version: None },
        ];
        let response = csv(&rows, "x.csv").unwrap();
        assert_eq!(response.headers()[header::CONTENT_TYPE], "text/csv; charset=utf-8");
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            "count,tool,version\n3,claude-code,\n-2,\"a,\"\"b\"\"\",2.1\n0,\"'=HYPERLINK(\"\"http://x\"\")\",\n1,'@SUM(A1),\n"
        );
    }
}
