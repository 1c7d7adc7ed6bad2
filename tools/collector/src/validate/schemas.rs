//! The published schemas (`docs/schema/`, embedded by [`crate::schema`]), compiled once with
//! `boon`, and a short reason for a value that fails one.

use std::sync::OnceLock;

use boon::{Compiler, SchemaIndex, Schemas, ValidationError};
use serde_json::Value;

use crate::schema;

/// A published definition the collector checks values against.
#[derive(Debug, Clone, Copy)]
pub(super) enum Definition {
    /// One relay message: the whole of `relay-message.v1.json`.
    RelayMessage,
    /// A Datadog item's `message`: `datadog-item.v1.json#/properties/message`.
    DatadogMessage,
}

struct Compiled {
    schemas: Schemas,
    relay_message: SchemaIndex,
    datadog_message: SchemaIndex,
}

fn compiled() -> &'static Compiled {
    static COMPILED: OnceLock<Compiled> = OnceLock::new();
    COMPILED.get_or_init(|| {
        let mut schemas = Schemas::new();
        let mut compiler = Compiler::new();
        for (_, file, text) in schema::ALL {
            // Embedded at build time and compiled by the tests: a failure here is a build bug.
            let value: Value = serde_json::from_str(text).expect("an embedded schema parses");
            compiler
                .add_resource(&url(file), value)
                .expect("an embedded schema loads");
        }
        let mut compile = |location: String| {
            compiler
                .compile(&location, &mut schemas)
                .expect("an embedded schema compiles")
        };
        let relay_message = compile(url("relay-message.v1.json"));
        let datadog_message = compile(format!(
            "{}#/properties/message",
            url("datadog-item.v1.json")
        ));
        Compiled {
            schemas,
            relay_message,
            datadog_message,
        }
    })
}

fn url(file: &str) -> String {
    format!("file:///closedloop-telemetry/schema/{file}")
}

/// Checks `value` against `definition`; the error names each failing place (a JSON pointer
/// into `value`) and why, e.g. `/trace/schemaVersion: value must be "1"`.
pub(super) fn check(definition: Definition, value: &Value) -> Result<(), String> {
    let c = compiled();
    let index = match definition {
        Definition::RelayMessage => c.relay_message,
        Definition::DatadogMessage => c.datadog_message,
    };
    c.schemas.validate(value, index).map_err(|e| reason(&e))
}

/// The leaves of boon's error tree, one `location: why` each (at most four), joined by `; `.
fn reason(e: &ValidationError) -> String {
    fn leaves<'a>(e: &'a ValidationError<'a, 'a>, out: &mut Vec<&'a ValidationError<'a, 'a>>) {
        if e.causes.is_empty() {
            out.push(e);
        }
        for cause in &e.causes {
            leaves(cause, out);
        }
    }
    let mut found = Vec::new();
    leaves(e, &mut found);
    let mut parts: Vec<String> = found
        .iter()
        .take(4)
        .map(|e| {
            let at = e.instance_location.to_string();
            if at.is_empty() {
                e.kind.to_string()
            } else {
                format!("{at}: {}", e.kind)
            }
        })
        .collect();
    if found.len() > 4 {
        parts.push(format!("and {} more", found.len() - 4));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_embedded_schemas_compile_and_reasons_name_the_place() {
        assert!(check(Definition::DatadogMessage, &json!("job.failed")).is_ok());
        assert_eq!(
            check(Definition::DatadogMessage, &json!("")).unwrap_err(),
            "length must be >=1, but got 0"
        );
        let why = check(Definition::RelayMessage, &json!({"type": "other"})).unwrap_err();
        assert!(
            why.contains("/type: value must be 'desktop.telemetry'"),
            "{why}"
        );
        assert!(
            why.starts_with("missing properties 'event', 'trace', 'id'"),
            "{why}"
        );
    }
}
