//! `eM mcp` driven over stdio by rmcp's client, as an AI assistant would:
//! initialize, list the tools, call them.

// Test code: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

mod support;

use ninaivalaigal_tests::{TestPair, spawn_pair};
use rmcp::{
    RoleClient, ServiceExt,
    model::{CallToolRequestParams, CallToolResult},
    service::RunningService,
    transport::TokioChildProcess,
};
use serde_json::{Map, Value, json};
use support::{Em, PASSWORD};

async fn connect(em: &Em) -> RunningService<RoleClient, ()> {
    let (transport, _stderr) = TokioChildProcess::builder(em.mcp_command())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("eM mcp starts");
    ().serve(transport).await.expect("MCP initialize succeeds")
}

async fn call(
    client: &RunningService<RoleClient, ()>,
    tool: &str,
    arguments: Value,
) -> CallToolResult {
    let arguments: Map<String, Value> = match arguments {
        Value::Object(object) => object,
        other => panic!("arguments must be an object: {other}"),
    };
    client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments))
        .await
        .unwrap_or_else(|error| panic!("{tool} answers: {error}"))
}

fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|block| block.as_text().map(|text| text.text.clone()))
        .collect()
}

/// The JSON a successful tool call returned.
fn success(result: &CallToolResult) -> Value {
    assert_ne!(result.is_error, Some(true), "tool failed: {}", text(result));
    serde_json::from_str(&text(result)).unwrap_or_else(|error| panic!("{error}: {}", text(result)))
}

async fn logged_in(pair: &TestPair, email: &str) -> Em {
    let em = Em::new(pair);
    em.register(email, PASSWORD).await.ok();
    em
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initialize_lists_the_memory_tools_with_argument_schemas() {
    let pair = spawn_pair().await;
    let em = logged_in(&pair, "ada@example.com").await;
    let client = connect(&em).await;

    let server = client.peer_info().expect("the server introduced itself");
    assert_eq!(
        server.server_info.as_ref().map(|info| info.name.as_str()),
        Some("eM")
    );
    assert!(server.capabilities.tools.is_some());
    assert!(
        server
            .instructions
            .as_deref()
            .is_some_and(|text| text.contains("recall"))
    );

    let tools = client.list_all_tools().await.expect("tools/list answers");
    let names: Vec<&str> = tools.iter().map(|tool| tool.name.as_ref()).collect();
    for expected in [
        "remember",
        "recall",
        "list_contexts",
        "create_context",
        "get_context",
        "start_recording",
        "stop_recording",
        "forget",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} is offered: {names:?}"
        );
    }
    for tool in &tools {
        assert!(
            tool.description.is_some(),
            "{} has a description",
            tool.name
        );
        assert_eq!(
            tool.input_schema.get("type"),
            Some(&json!("object")),
            "{}",
            tool.name
        );
    }
    let remember = tools.iter().find(|tool| tool.name == "remember").unwrap();
    let properties = remember.input_schema["properties"].as_object().unwrap();
    for field in ["type", "data", "context"] {
        assert!(
            properties.contains_key(field),
            "remember takes {field}: {properties:?}"
        );
    }
    assert_eq!(properties["data"]["type"], "object");
    let required: Vec<&Value> = remember.input_schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert!(required.contains(&&json!("type")) && required.contains(&&json!("data")));
    let recall = tools.iter().find(|tool| tool.name == "recall").unwrap();
    let properties = recall.input_schema["properties"].as_object().unwrap();
    for field in ["context", "query", "type", "limit", "all_contexts"] {
        assert!(
            properties.contains_key(field),
            "recall takes {field}: {properties:?}"
        );
    }

    client.cancel().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_tool_errors_with_the_cli_message_not_crashes() {
    let pair = spawn_pair().await;
    // Nobody is logged in.
    let em = Em::new(&pair);
    let client = connect(&em).await;

    let refused = call(&client, "list_contexts", json!({})).await;
    assert_eq!(refused.is_error, Some(true));
    assert!(
        text(&refused).contains("you are not logged in"),
        "{}",
        text(&refused)
    );
    assert!(text(&refused).contains("eM login"), "{}", text(&refused));

    // Arguments that do not fit the schema are refused by the protocol layer.
    let bad = client
        .call_tool(
            CallToolRequestParams::new("remember").with_arguments(
                json!({"type": "note", "data": "not an object"})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        )
        .await;
    assert!(
        bad.is_err()
            || bad
                .as_ref()
                .is_ok_and(|result| result.is_error == Some(true)),
        "{bad:?}"
    );

    // Logging in from a shell is picked up by the running server.
    em.register("late@example.com", PASSWORD).await.ok();
    let listed = success(&call(&client, "list_contexts", json!({})).await);
    assert_eq!(listed["contexts"], json!([]));

    client.cancel().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assistant_remembers_and_recalls_through_mcp() {
    let pair = spawn_pair().await;
    // Authenticated the way the VS Code entry does it: a token in the environment.
    let user = pair.register_user("bob@example.com").await;
    let mut em = Em::new(&pair);
    em.user_token = Some(user.access_token.clone());
    let client = connect(&em).await;

    let created = success(
        &call(
            &client,
            "create_context",
            json!({"name": "proj", "description": "work"}),
        )
        .await,
    );
    assert_eq!(created["context"]["name"], "proj");
    let started = success(&call(&client, "start_recording", json!({"context": "proj"})).await);
    assert_eq!(started["context"]["recording"], true);

    let data =
        json!({"message": "the build needs protoc-free protox", "files": ["build.rs"], "count": 2});
    let remembered =
        success(&call(&client, "remember", json!({"type": "note", "data": data})).await);
    assert_eq!(remembered["memory"]["context"], "proj");
    let id = remembered["memory"]["id"].clone();

    let recalled = success(&call(&client, "recall", json!({"query": "protox"})).await);
    let memories = recalled["memories"].as_array().unwrap();
    assert_eq!(memories.len(), 1, "{recalled}");
    assert_eq!(memories[0]["id"], id);
    assert_eq!(memories[0]["data"], data, "data comes back exactly");
    assert_eq!(memories[0]["type"], "note");

    let contexts = success(&call(&client, "list_contexts", json!({})).await);
    assert_eq!(contexts["contexts"][0]["memory_count"], 1);

    let missing = call(&client, "get_context", json!({"context": "nope"})).await;
    assert_eq!(missing.is_error, Some(true));

    success(&call(&client, "stop_recording", json!({})).await);
    success(&call(&client, "forget", json!({"id": id})).await);
    let after = success(&call(&client, "recall", json!({"context": "proj"})).await);
    assert_eq!(after["memories"], json!([]));

    client.cancel().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memories_with_terminal_escapes_come_back_exactly() {
    // The CLI escapes them for the terminal; the assistant gets the data.
    let pair = spawn_pair().await;
    let user = pair.register_user("eve@example.com").await;
    let mut em = Em::new(&pair);
    em.user_token = Some(user.access_token.clone());
    let client = connect(&em).await;

    let hostile = "\u{1b}]52;c;ZXZpbA==\u{7}\u{1b}[2J\u{9b}31m\u{7f}\u{202e}txt\u{2066}\r\n";
    let description = format!("desc {hostile}");
    success(
        &call(
            &client,
            "create_context",
            json!({"name": "proj", "description": description}),
        )
        .await,
    );
    let data = json!({"message": hostile, hostile: [hostile]});
    let kind = "note\u{202e}exe";
    success(
        &call(
            &client,
            "remember",
            json!({"type": kind, "data": data, "context": "proj"}),
        )
        .await,
    );
    let recalled = success(&call(&client, "recall", json!({"context": "proj"})).await);
    assert_eq!(recalled["memories"][0]["data"], data);
    assert_eq!(recalled["memories"][0]["type"], kind);
    let shown = success(&call(&client, "get_context", json!({"context": "proj"})).await);
    assert_eq!(shown["description"], description);

    client.cancel().await.expect("clean shutdown");
}
