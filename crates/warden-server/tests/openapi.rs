//! The generated OpenAPI description: every route's access follows its path, every secured
//! operation documents its 401, every schema compiles with every reference resolved, and the
//! server serves exactly the generated document.

mod common;

use common::{Db, TestServer, strict, validate};
use serde_json::{Value, json};
use warden_server::{Access, openapi_json, routes};

fn document() -> Value {
    serde_json::from_str(openapi_json()).unwrap()
}

#[test]
fn every_route_takes_the_credential_its_path_names() {
    let all = routes();
    assert!(all.iter().filter(|route| route.path.starts_with("/api/")).count() >= 40, "{all:?}");
    for route in all {
        let expected = match route.path.as_str() {
            path if path.starts_with("/api/v1/device/") => Access::Device,
            path if path.starts_with("/api/v1/admin/") => Access::Admin,
            path if path.starts_with("/api/") => Access::Public,
            _ => Access::Page,
        };
        assert_eq!(route.access, expected, "{} {}", route.method, route.path);
    }
}

#[test]
fn every_secured_operation_documents_its_401_and_every_error_is_an_api_error() {
    let spec = document();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let secured = operation["security"].as_array().is_some_and(|s| !s.is_empty());
            if secured {
                assert!(operation["responses"].get("401").is_some(), "{method} {path} lacks its 401");
            }
            for (status, response) in operation["responses"].as_object().unwrap() {
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        response.pointer("/content/application~1json/schema/$ref"),
                        Some(&json!("#/components/schemas/ApiError")),
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
}

#[test]
fn every_schema_compiles_and_the_checker_rejects_what_the_document_does_not_describe() {
    let spec = strict(document());
    let schemas = spec["components"]["schemas"].as_object().unwrap();
    assert!(schemas.len() >= 70, "{}", schemas.len());
    for name in schemas.keys() {
        let schema = json!({ "$ref": format!("#/components/schemas/{name}") });
        // Compiling resolves every reference the schema makes; `null` is no component's value.
        let problem = validate(&spec, &schema, &Value::Null).expect_err(name);
        assert!(!problem.contains("does not compile"), "{name}: {problem}");
    }
    let error = json!({ "$ref": "#/components/schemas/ApiError" });
    let good = json!({"code": "not_found", "message": "no such device"});
    assert_eq!(validate(&spec, &error, &good), Ok(()));
    let cases = [
        json!({"code": "not_found", "message": "m", "extra": 1}),
        json!({"code": "not_found"}),
        json!({"code": 7, "message": "m"}),
    ];
    for bad in cases {
        assert!(validate(&spec, &error, &bad).is_err(), "{bad}");
    }
    // A member of a tagged union: the variant's fields and its tag, nothing else.
    let page = json!({ "$ref": "#/components/schemas/PendingView" });
    let request = json!({
        "id": "exc_1", "device_id": "dev_1", "user": "dev@corp.example", "tool": "claude-code",
        "justification": "j", "requested_seconds": 600, "state": "pending", "created_at": 1,
        "hostname": "laptop", "blocked_last_7_days": 0
    });
    assert_eq!(validate(&spec, &page, &request), Ok(()));
    let mut smuggled = request.clone();
    smuggled["approved_by_self"] = json!(true);
    assert!(validate(&spec, &page, &smuggled).is_err());
}

#[test]
fn documented_bounds_are_the_ones_the_server_checks() {
    let spec = document();
    let schema = |name: &str, field: &str| spec["components"]["schemas"][name]["properties"][field].clone();
    assert_eq!(
        schema("ExceptionRequestCreate", "justification")["minLength"],
        json!(warden_api::MIN_JUSTIFICATION_CHARS)
    );
    assert_eq!(schema("ExceptionRequestCreate", "duration_seconds")["minimum"], json!(1));
    assert_eq!(schema("EnrollmentCodeCreate", "valid_hours")["maximum"], json!(168));
}

#[tokio::test]
async fn the_server_serves_the_generated_description() {
    let server = TestServer::start(Db::Sqlite).await.unwrap();
    let reply = server.api.client.send(hyper::Method::GET, "/api/v1/openapi.json", None, None, &[]).await.unwrap();
    assert_eq!(reply.body, document());
    assert_eq!(reply.body["openapi"], "3.1.0");
    server.stop().await;
}
