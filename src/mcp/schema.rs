//! Tool schemas made from the REST API's own (utoipa): a task, a draft or feedback is described
//! once, for `/v1/openapi.json` and for MCP alike. OpenAPI 3.1 schemas are JSON Schema; only
//! the references move from `#/components/schemas/X` to the schema's own `#/$defs/X`.

use std::sync::Arc;

use rmcp::model::JsonObject;
use serde_json::Value;
use utoipa::ToSchema;

const OPENAPI_REFS: &str = "#/components/schemas/";
const OWN_REFS: &str = "#/$defs/";

/// `T`'s schema as a self-contained JSON Schema object (its dependencies under `$defs`).
pub fn of<T: ToSchema>() -> Arc<JsonObject> {
    let mut deps = Vec::new();
    T::schemas(&mut deps);
    let mut root = match serde_json::to_value(T::schema()) {
        Ok(Value::Object(map)) => map,
        // A schema always serialises to an object; an empty one accepts anything.
        _ => JsonObject::new(),
    };
    root.entry("type").or_insert_with(|| "object".into());
    if !deps.is_empty() {
        let mut defs = JsonObject::new();
        for (name, schema) in deps {
            if let Ok(v) = serde_json::to_value(schema) {
                defs.insert(name, v);
            }
        }
        root.insert("$defs".into(), Value::Object(defs));
    }
    let mut value = Value::Object(root);
    rewrite_refs(&mut value);
    match value {
        Value::Object(map) => Arc::new(map),
        _ => Arc::new(JsonObject::new()),
    }
}

fn rewrite_refs(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                match child {
                    Value::String(s) if k == "$ref" => {
                        if let Some(name) = s.strip_prefix(OPENAPI_REFS) {
                            *s = format!("{OWN_REFS}{name}");
                        }
                    }
                    _ => rewrite_refs(child),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_schema_stands_alone() {
        let s = Value::Object((*of::<crate::domain::Task>()).clone());
        assert_eq!(s["type"], "object");
        let text = s.to_string();
        assert!(!text.contains(OPENAPI_REFS), "{text}");
        // Every reference it makes is defined in it.
        for part in text.split(OWN_REFS).skip(1) {
            let name = part.split('"').next().unwrap_or_default();
            assert!(s["$defs"].get(name).is_some(), "{name} undefined in {text}");
        }
    }
}
