//! A mermaid flowchart of a state machine, generated from the ASL (the README
//! embeds it; a test fails when the two drift apart).

use serde_json::Value;

/// Mermaid node ids cannot hold `?` and friends.
fn id(name: &str) -> String {
    name.chars().filter(|c| c.is_ascii_alphanumeric()).collect()
}

fn node(name: &str, state: &Value) -> String {
    let n = id(name);
    match state["Type"].as_str().unwrap_or("") {
        "Choice" => format!("    {n}{{\"{name}\"}}"),
        "Succeed" | "Fail" => format!("    {n}([\"{name}\"])"),
        "Wait" => format!("    {n}[/\"{name}\"/]"),
        _ => format!("    {n}[\"{name}\"]"),
    }
}

/// `flowchart TD` of the top-level states: Next, Choice rules, Default, Catch.
pub fn mermaid(definition: &Value) -> String {
    let mut lines = vec!["flowchart TD".to_owned()];
    let empty = serde_json::Map::new();
    let states = definition["States"].as_object().unwrap_or(&empty);
    lines.push(format!(
        "    start((start)) --> {}",
        id(definition["StartAt"].as_str().unwrap_or(""))
    ));
    for (name, s) in states {
        lines.push(node(name, s));
    }
    for (name, s) in states {
        let from = id(name);
        if let Some(next) = s["Next"].as_str() {
            lines.push(format!("    {from} --> {}", id(next)));
        }
        for rule in s["Choices"].as_array().into_iter().flatten() {
            let label = rule
                .as_object()
                .and_then(|o| o.iter().find(|(k, _)| *k != "Variable" && *k != "Next"))
                .map(|(k, v)| format!("{k} {v}"))
                .unwrap_or_default()
                .replace('"', "'");
            lines.push(format!(
                "    {from} -->|\"{label}\"| {}",
                id(rule["Next"].as_str().unwrap_or(""))
            ));
        }
        if let Some(d) = s["Default"].as_str() {
            lines.push(format!("    {from} -->|otherwise| {}", id(d)));
        }
        for c in s["Catch"].as_array().into_iter().flatten() {
            let errors: Vec<&str> = c["ErrorEquals"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            lines.push(format!(
                "    {from} -.->|\"{}\"| {}",
                errors.join(", "),
                id(c["Next"].as_str().unwrap_or(""))
            ));
        }
        if s["End"] == Value::Bool(true) {
            lines.push(format!("    {from} --> finish((end))"));
        }
    }
    lines.join("\n") + "\n"
}
