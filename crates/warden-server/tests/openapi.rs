//! The served OpenAPI description matches the router: every API route is described, every
//! described route exists, and the served document is the embedded one.

mod common;

use common::{Db, TestServer};
use serde_json::Value;
use std::collections::BTreeSet;
use warden_server::{OPENAPI_JSON, routes};

#[test]
fn every_route_is_described_and_every_description_is_a_route() {
    let spec: Value = serde_json::from_str(OPENAPI_JSON).unwrap();
    let described: BTreeSet<(String, String)> = spec["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object().unwrap().keys().map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    let routed: BTreeSet<(String, String)> = routes()
        .iter()
        .filter(|route| route.path.starts_with("/api/"))
        .map(|route| (route.method.to_string(), route.path.to_string()))
        .collect();
    assert_eq!(described, routed);
}

#[test]
fn every_reference_resolves_and_every_operation_documents_errors() {
    let spec: Value = serde_json::from_str(OPENAPI_JSON).unwrap();
    fn refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r.clone());
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(list) => list.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&spec, &mut all);
    assert!(!all.is_empty());
    for reference in all {
        assert!(spec.pointer(reference.trim_start_matches('#')).is_some(), "dangling {reference}");
    }
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let secured = operation["security"].as_array().is_none_or(|s| !s.is_empty());
            if secured {
                assert!(operation["responses"].get("401").is_some(), "{method} {path} lacks its 401");
            }
        }
    }
}

#[tokio::test]
async fn the_server_serves_the_description() {
    let server = TestServer::start(Db::Sqlite).await.unwrap();
    let reply = server.api.client.send(hyper::Method::GET, "/api/v1/openapi.json", None, None, &[]).await.unwrap();
    assert_eq!(reply.body, serde_json::from_str::<Value>(OPENAPI_JSON).unwrap());
    server.stop().await;
}
