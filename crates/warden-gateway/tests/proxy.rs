//! The gateway end to end on loopback: a real client request through the gateway to a recording test
//! upstream. The upstream never receives an original value; the client gets every original back in
//! text and file writes (whole and streamed, for each API), never in a shell command; bad requests are
//! refused with nothing sent; upstream errors pass through unchanged.

mod common;

use common::{
    CLIENT_TOKEN, OTHER_CLIENT_TOKEN, SHELL_TOOL, UPSTREAM_KEY, WRITE_TOOL, placeholders, sse_events, start_gateway,
    start_upstream,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use warden_gateway::RequestReport;
use warden_policy::{Masking, MaskingRule};

const AWS_KEY: &str = "AKIAQX7T2LMZP4RGHK3W";
const PEM: &str = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx3kZp9Qm2vTn8LwR5yHb0cJfE1sUa7dKgXo4iVtN6rWqPzYe\nk8HnB2fLm5xGv9QsT3cRw7JdA1pZu0yKe4iXo6MbNtV2hF8gCqL1sWjD9rUa3nPY\n-----END RSA PRIVATE KEY-----";
const HOST: &str = "build-7.eu.corp.example.com";
/// A value with a quote, a backslash and a newline, found by a policy rule.
const ODD: &str = "vault{p\"a\\ss\nw0rd}";

fn masking() -> Masking {
    Masking {
        internal_domains: vec!["corp.example.com".into()],
        code_names: vec!["Bluefin".into()],
        rules: vec![MaskingRule {
            id: "vault-literal".into(),
            keywords: vec!["vault{".into()],
            pattern: r"vault\{[^}]*\}".into(),
            group: None,
            entropy: None,
            label: None,
            multiline: false,
            window: None,
        }],
        ..Masking::default()
    }
}

fn originals() -> [&'static str; 4] {
    [AWS_KEY, PEM, HOST, ODD]
}

fn prompt() -> String {
    format!("Deploy Bluefin to {HOST} with key {AWS_KEY} and this key:\n{PEM}\nThe vault literal is {ODD}.")
}

struct Setup {
    gateway: String,
    upstream: std::sync::Arc<common::Upstream>,
    http: reqwest::Client,
}

async fn setup() -> Setup {
    let (upstream_url, upstream) = start_upstream().await;
    let address = start_gateway(&upstream_url, Some(&masking())).await;
    Setup { gateway: format!("http://{address}"), upstream, http: reqwest::Client::new() }
}

impl Setup {
    async fn post(&self, path: &str, body: &Value, anthropic: bool) -> (u16, String) {
        let mut request =
            self.http.post(format!("{}{path}", self.gateway)).json(body).header("x-session-id", "conversation-1");
        request = if anthropic {
            request.header("x-api-key", CLIENT_TOKEN).header("anthropic-version", "2023-06-01")
        } else {
            request.bearer_auth(CLIENT_TOKEN)
        };
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// Asserts the upstream never saw an original value and got the gateway's credential only.
    fn assert_upstream_saw_no_originals(&self) {
        let received = self.upstream.received.lock().unwrap();
        assert!(!received.is_empty());
        for request in received.iter() {
            let decoded: String = match serde_json::from_str::<Value>(&request.body) {
                Ok(value) => all_strings(&value).join("\n"),
                Err(_) => request.body.clone(),
            };
            for original in originals().iter().chain(&["Bluefin", "corp.example.com", "BEGIN RSA PRIVATE KEY"]) {
                assert!(!request.body.contains(original) && !decoded.contains(original), "upstream saw {original:?}");
            }
            assert!(!request.body.contains(CLIENT_TOKEN));
            let headers = format!("{:?}", request.headers);
            assert!(!headers.contains(CLIENT_TOKEN), "{headers}");
            assert!(headers.contains(UPSTREAM_KEY), "{headers}");
        }
    }
}

/// Every string in a JSON value, and inside JSON-in-strings (tool arguments).
fn all_strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => {
            let mut out = vec![s.clone()];
            if let Ok(inner @ (Value::Object(_) | Value::Array(_))) = serde_json::from_str::<Value>(s) {
                out.extend(all_strings(&inner));
            }
            out
        }
        Value::Array(items) => items.iter().flat_map(all_strings).collect(),
        Value::Object(map) => map.values().flat_map(all_strings).collect(),
        _ => vec![],
    }
}

/// What the client got: the text, and each tool's input as JSON.
#[derive(Debug, Default)]
struct Reply {
    text: String,
    tools: BTreeMap<String, Value>,
}

fn assert_restored(reply: &Reply) {
    for original in originals() {
        assert!(reply.text.contains(original), "text lacks {original:?}: {:?}", reply.text);
    }
    let write = reply.tools.get(WRITE_TOOL).or_else(|| reply.tools.get("Write")).expect("a write tool call");
    let content = write["content"].as_str().unwrap();
    for original in originals() {
        assert!(content.contains(original), "file content lacks {original:?}: {content:?}");
    }
    let shell = reply.tools.get(SHELL_TOOL).or_else(|| reply.tools.get("Bash")).expect("a shell tool call");
    let command = shell["command"].as_str().unwrap();
    assert!(command.contains("⟦SECRET_") || command.contains("⟦HOST_") || command.contains("⟦NAME_"), "{command}");
    for original in originals() {
        assert!(!command.contains(original), "shell command got {original:?}");
    }
}

fn chat_request(stream: bool) -> Value {
    json!({"model": "test-model", "stream": stream, "messages": [
        {"role": "system", "content": format!("You work on {HOST}.")},
        {"role": "user", "content": prompt()},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c0", "type": "function",
            "function": {"name": "read_file", "arguments": json!({"path": "/etc/app.env", "note": ODD}).to_string()}}]},
        {"role": "tool", "tool_call_id": "c0", "content": format!("AWS_ACCESS_KEY_ID={AWS_KEY}\n")},
        {"role": "user", "content": "Now write the config."},
    ]})
}

#[tokio::test]
async fn chat_completions_whole_and_streamed() {
    let setup = setup().await;
    let (status, body) = setup.post("/v1/chat/completions", &chat_request(false), false).await;
    assert_eq!(status, 200, "{body}");
    let value: Value = serde_json::from_str(&body).unwrap();
    let message = &value["choices"][0]["message"];
    let mut reply = Reply { text: message["content"].as_str().unwrap().to_owned(), ..Reply::default() };
    for call in message["tool_calls"].as_array().unwrap() {
        let arguments = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        reply.tools.insert(call["function"]["name"].as_str().unwrap().to_owned(), arguments);
    }
    assert_restored(&reply);

    let (status, body) = setup.post("/v1/chat/completions", &chat_request(true), false).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.ends_with("data: [DONE]\n\n"));
    let mut reply = Reply::default();
    let mut arguments: BTreeMap<u64, (String, String)> = BTreeMap::new();
    for (_, event) in sse_events(&body) {
        let delta = &event["choices"][0]["delta"];
        reply.text.push_str(delta["content"].as_str().unwrap_or(""));
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let entry = arguments.entry(call["index"].as_u64().unwrap()).or_default();
            if let Some(name) = call["function"]["name"].as_str() {
                entry.0 = name.to_owned();
            }
            entry.1.push_str(call["function"]["arguments"].as_str().unwrap_or(""));
        }
    }
    for (name, text) in arguments.into_values() {
        reply.tools.insert(name, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text:?}: {e}")));
    }
    assert_restored(&reply);
    setup.assert_upstream_saw_no_originals();

    // Same conversation, same placeholders: both requests carried identical masked prompts.
    let received = setup.upstream.received.lock().unwrap();
    let first: Value = serde_json::from_str(&received[0].body).unwrap();
    let second: Value = serde_json::from_str(&received[1].body).unwrap();
    assert_eq!(first["messages"], second["messages"]);
}

fn messages_request(stream: bool) -> Value {
    json!({"model": "test-model", "max_tokens": 100, "stream": stream,
        "system": [{"type": "text", "text": format!("You work on {HOST}.")}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": prompt()}]}]})
}

#[tokio::test]
async fn anthropic_messages_whole_and_streamed_and_count_tokens() {
    let setup = setup().await;
    let (status, body) = setup.post("/v1/messages", &messages_request(false), true).await;
    assert_eq!(status, 200, "{body}");
    let value: Value = serde_json::from_str(&body).unwrap();
    let mut reply = Reply::default();
    for block in value["content"].as_array().unwrap() {
        match block["type"].as_str().unwrap() {
            "text" => reply.text.push_str(block["text"].as_str().unwrap()),
            _ => drop(reply.tools.insert(block["name"].as_str().unwrap().to_owned(), block["input"].clone())),
        }
    }
    assert_restored(&reply);

    let (status, body) = setup.post("/v1/messages", &messages_request(true), true).await;
    assert_eq!(status, 200, "{body}");
    let mut reply = Reply::default();
    let mut blocks: BTreeMap<u64, (String, String)> = BTreeMap::new();
    for (name, event) in sse_events(&body) {
        assert_eq!(name.as_deref(), event["type"].as_str(), "event names survive");
        let index = event["index"].as_u64().unwrap_or(0);
        if event["type"] == "content_block_start" {
            blocks.entry(index).or_default().0 = event["content_block"]["name"].as_str().unwrap_or("").to_owned();
        }
        if event["type"] == "content_block_delta" {
            reply.text.push_str(event["delta"]["text"].as_str().unwrap_or(""));
            blocks.entry(index).or_default().1.push_str(event["delta"]["partial_json"].as_str().unwrap_or(""));
        }
    }
    for (name, input) in blocks.into_values().filter(|(name, _)| !name.is_empty()) {
        reply.tools.insert(name, serde_json::from_str(&input).unwrap());
    }
    assert_restored(&reply);

    let (status, body) = setup.post("/v1/messages/count_tokens", &messages_request(false), true).await;
    assert_eq!(status, 200, "{body}");
    setup.assert_upstream_saw_no_originals();
    let received = setup.upstream.received.lock().unwrap();
    assert!(received.iter().all(|r| r.headers.get("anthropic-version").is_some_and(|v| v == "2023-06-01")));
    assert_eq!(received.last().unwrap().path, "/v1/messages/count_tokens");
}

#[tokio::test]
async fn responses_api_whole_and_streamed() {
    let setup = setup().await;
    let request = |stream: bool| json!({"model": "test-model", "stream": stream, "instructions": format!("Host {HOST}"), "input": prompt()});
    let (status, body) = setup.post("/v1/responses", &request(false), false).await;
    assert_eq!(status, 200, "{body}");
    let value: Value = serde_json::from_str(&body).unwrap();
    let mut reply = Reply::default();
    for item in value["output"].as_array().unwrap() {
        match item["type"].as_str().unwrap() {
            "message" => reply.text.push_str(item["content"][0]["text"].as_str().unwrap()),
            _ => drop(reply.tools.insert(
                item["name"].as_str().unwrap().to_owned(),
                serde_json::from_str(item["arguments"].as_str().unwrap()).unwrap(),
            )),
        }
    }
    assert_restored(&reply);

    let (status, body) = setup.post("/v1/responses", &request(true), false).await;
    assert_eq!(status, 200, "{body}");
    let mut reply = Reply::default();
    let mut names: BTreeMap<u64, String> = BTreeMap::new();
    let mut done_text = String::new();
    for (_, event) in sse_events(&body) {
        let index = event["output_index"].as_u64().unwrap_or(0);
        match event["type"].as_str().unwrap() {
            "response.output_item.added" => {
                drop(names.insert(index, event["item"]["name"].as_str().unwrap_or("").into()))
            }
            "response.output_text.delta" => reply.text.push_str(event["delta"].as_str().unwrap()),
            "response.output_text.done" => done_text = event["text"].as_str().unwrap().to_owned(),
            "response.function_call_arguments.done" => drop(
                reply
                    .tools
                    .insert(names[&index].clone(), serde_json::from_str(event["arguments"].as_str().unwrap()).unwrap()),
            ),
            _ => {}
        }
    }
    assert_eq!(done_text, reply.text, "the done event carries the same restored text as the deltas");
    assert_restored(&reply);
    setup.assert_upstream_saw_no_originals();
}

#[tokio::test]
async fn refuses_what_it_cannot_read_and_passes_upstream_errors_through() {
    let setup = setup().await;
    let url = |path: &str| format!("{}{path}", setup.gateway);
    let send = |request: reqwest::RequestBuilder| async move {
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    };
    // Not JSON: 400, nothing sent.
    let (status, body) = send(
        setup
            .http
            .post(url("/v1/chat/completions"))
            .bearer_auth(CLIENT_TOKEN)
            .body(format!("{{\"messages\": \"{AWS_KEY}")),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not JSON"), "{body}");
    // Too large: 413.
    let big = json!({"messages": [{"role": "user", "content": "x".repeat(2 * 1024 * 1024)}]});
    let (status, _) = send(setup.http.post(url("/v1/chat/completions")).bearer_auth(CLIENT_TOKEN).json(&big)).await;
    assert_eq!(status, 413);
    // No token, wrong token: 401. Unknown route: 404.
    let (status, _) = send(setup.http.post(url("/v1/chat/completions")).json(&chat_request(false))).await;
    assert_eq!(status, 401);
    let (status, body) =
        send(setup.http.post(url("/v1/messages")).header("x-api-key", "guess").json(&messages_request(false))).await;
    assert_eq!((status, body.contains("\"authentication_error\"")), (401, true), "{body}");
    let (status, _) =
        send(setup.http.post(url("/v1/embeddings")).bearer_auth(CLIENT_TOKEN).json(&json!({"input": AWS_KEY}))).await;
    assert_eq!(status, 404);
    assert!(setup.upstream.received.lock().unwrap().is_empty(), "nothing reached the upstream");

    // Models: forwarded as is.
    let (status, body) = send(setup.http.get(url("/v1/models")).bearer_auth(CLIENT_TOKEN)).await;
    assert_eq!((status, body.contains("test-model")), (200, true), "{body}");

    // An upstream error passes through unchanged, status and body.
    let error = r#"{"error":{"message":"Rate limit ⟦SECRET_1⟧","type":"rate_limit_error"}}"#;
    *setup.upstream.fail_with.lock().unwrap() = Some((429, error.into()));
    let (status, body) = setup.post("/v1/chat/completions", &chat_request(false), false).await;
    assert_eq!((status, body.as_str()), (429, error));
}

#[tokio::test]
async fn reports_counts_per_rule_and_the_placeholders_kept_from_a_shell() {
    let reports: Arc<Mutex<Vec<RequestReport>>> = Arc::default();
    let sink = Arc::clone(&reports);
    let (upstream_url, _upstream) = start_upstream().await;
    let address = common::start_gateway_reporting(
        &upstream_url,
        Some(&masking()),
        Some(Arc::new(move |report: &RequestReport| sink.lock().unwrap().push(report.clone()))),
    )
    .await;
    let response = reqwest::Client::new()
        .post(format!("http://{address}/v1/chat/completions"))
        .bearer_auth(CLIENT_TOKEN)
        .json(&chat_request(true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert!(body.contains(AWS_KEY));
    // The report is made when the stream ends, just after the last byte was handed on.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while reports.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no report");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let report = reports.lock().unwrap()[0].clone();
    assert_eq!((report.path.as_str(), report.status), ("/v1/chat/completions", 200));
    let counts = &report.masked.by_rule;
    for rule in ["aws-access-key-id", "private-key", "internal-host", "code-name", "vault-literal"] {
        assert!(counts.get(rule).is_some_and(|n| *n >= 1), "{rule} not counted: {counts:?}");
    }
    assert!(report.restored >= 8, "{report:?}");
    assert!(
        !report.kept_masked.is_empty() && report.kept_masked.iter().all(|(tool, _)| tool == SHELL_TOOL),
        "{report:?}"
    );
    let shown = format!("{report:?}");
    for original in originals() {
        assert!(!shown.contains(original), "the report carries a value: {shown}");
    }
}

#[tokio::test]
async fn another_client_naming_the_same_session_never_gets_its_values_restored() {
    // Two users of one gateway (the service serves every local user): the second sends the first's
    // session id and a placeholder the first one's conversation holds. Placeholders belong to the
    // client whose token sent them, so the echo comes back masked.
    let reports: Arc<Mutex<Vec<RequestReport>>> = Arc::default();
    let sink = Arc::clone(&reports);
    let (upstream_url, upstream) = start_upstream().await;
    let address = common::start_gateway_reporting(
        &upstream_url,
        Some(&masking()),
        Some(Arc::new(move |report: &RequestReport| sink.lock().unwrap().push(report.clone()))),
    )
    .await;
    let http = reqwest::Client::new();
    let send = |token: &'static str, content: String| {
        let request = http
            .post(format!("http://{address}/v1/chat/completions"))
            .bearer_auth(token)
            .header("x-session-id", "shared-session")
            .json(&json!({"model": "m", "messages": [{"role": "user", "content": content}]}));
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let (status, first) = send(CLIENT_TOKEN, format!("deploy with {AWS_KEY}")).await;
    assert_eq!(status, 200, "{first}");
    assert!(first.contains(AWS_KEY), "the owner gets the value back: {first}");
    let placeholder = placeholders(&upstream.received.lock().unwrap()[0].body)[0].clone();
    let (status, second) = send(OTHER_CLIENT_TOKEN, format!("repeat {placeholder} please")).await;
    assert_eq!(status, 200, "{second}");
    assert!(!second.contains(AWS_KEY), "another client got the value: {second}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while reports.lock().unwrap().len() < 2 {
        assert!(std::time::Instant::now() < deadline, "no reports");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let clients: Vec<String> = reports.lock().unwrap().iter().map(|r| r.client.clone()).collect();
    assert_eq!(clients, ["tester", "other"], "each report names whom the request was for");
}
