//! Checks a resource against its CRD's structural schema the way an API server would: types,
//! required fields, ranges, lengths, patterns, enums and list-map keys — and, unlike an API
//! server, reports unknown fields instead of silently pruning them.
//!
//! A general JSON-Schema validator does not fit: structural schemas have Kubernetes semantics
//! (`nullable`, pruning instead of `additionalProperties: false`, `x-kubernetes-*` markers)
//! that such validators do not know, and its messages would not name our fields or fixes.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::problem::{FieldPath, Problem};

/// Checks `value` against `schema`, appending every problem found to `out`.
pub(crate) fn check(schema: &Value, value: &Value, path: &FieldPath, out: &mut Vec<Problem>) {
    if value.is_null() {
        if !flag(schema, "nullable") {
            out.push(Problem::new(
                path.to_string(),
                "must not be null",
                "give it a value or remove the field",
            ));
        }
        return;
    }
    if flag(schema, "x-kubernetes-int-or-string") {
        if !(value.is_string() || value.is_i64() || value.is_u64()) {
            out.push(type_problem(path, "an integer or a string", value));
        }
        return;
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => check_object(schema, value, path, out),
        Some("array") => check_array(schema, value, path, out),
        Some("string") => check_string(schema, value, path, out),
        Some("integer") => check_number(schema, value, path, out, true),
        Some("number") => check_number(schema, value, path, out, false),
        Some("boolean") if !value.is_boolean() => {
            out.push(type_problem(path, "true or false", value));
        }
        _ => {}
    }
}

fn flag(schema: &Value, name: &str) -> bool {
    schema.get(name).and_then(Value::as_bool).unwrap_or(false)
}

fn type_problem(path: &FieldPath, expected: &str, value: &Value) -> Problem {
    Problem::new(
        path.to_string(),
        format!("must be {expected}, found {}", describe(value)),
        format!("write {expected} here"),
    )
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "a map".to_owned(),
    }
}

fn check_object(schema: &Value, value: &Value, path: &FieldPath, out: &mut Vec<Problem>) {
    let Some(object) = value.as_object() else {
        out.push(type_problem(path, "a map of fields", value));
        return;
    };
    let properties = schema.get("properties").and_then(Value::as_object);
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if !object.contains_key(name) {
                out.push(Problem::new(
                    path.field(name).to_string(),
                    "is required",
                    describe_field(properties, name),
                ));
            }
        }
    }
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    let preserve_unknown = flag(schema, "x-kubernetes-preserve-unknown-fields");
    for (name, field_value) in object {
        let field_path = path.field(name);
        match (properties.and_then(|p| p.get(name)), additional) {
            (Some(field_schema), _) => check(field_schema, field_value, &field_path, out),
            (None, Some(value_schema)) => check(value_schema, field_value, &field_path, out),
            (None, None) if preserve_unknown || properties.is_none() => {}
            (None, None) => out.push(unknown_field(&field_path, name, properties)),
        }
    }
}

fn describe_field(properties: Option<&Map<String, Value>>, name: &str) -> String {
    let description = properties
        .and_then(|p| p.get(name))
        .and_then(|s| s.get("description"))
        .and_then(Value::as_str)
        .and_then(|d| d.lines().next())
        .map(|d| d.trim_end_matches(['.', ',']));
    match description {
        Some(d) => format!("add `{name}`: {d}"),
        None => format!("add `{name}`"),
    }
}

fn unknown_field(path: &FieldPath, name: &str, properties: Option<&Map<String, Value>>) -> Problem {
    let lowered = name.to_ascii_lowercase();
    if [
        "accesskey",
        "secretkey",
        "secretaccesskey",
        "password",
        "sessiontoken",
        "token",
    ]
    .iter()
    .any(|secret| lowered.replace(['_', '-'], "").contains(secret))
    {
        return Problem::new(
            path.to_string(),
            "unknown field; credentials are never accepted in a spec",
            "remove it and put the keys in a Secret named by aws.credentialsSecretRef, or use the pod's service account",
        );
    }
    let known: Vec<&str> = properties
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let hint = match known.iter().find(|k| k.eq_ignore_ascii_case(name)) {
        Some(close) => format!("did you mean `{close}`? field names are case-sensitive"),
        None => format!(
            "remove it or fix its spelling; known fields here: {}",
            known.join(", ")
        ),
    };
    Problem::new(path.to_string(), "unknown field", hint)
}

fn check_array(schema: &Value, value: &Value, path: &FieldPath, out: &mut Vec<Problem>) {
    let Some(items) = value.as_array() else {
        out.push(type_problem(path, "a list", value));
        return;
    };
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && (items.len() as u64) < min
    {
        out.push(Problem::new(
            path.to_string(),
            format!("must have at least {min} item(s), has {}", items.len()),
            "add the missing items",
        ));
    }
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && (items.len() as u64) > max
    {
        out.push(Problem::new(
            path.to_string(),
            format!("must have at most {max} items, has {}", items.len()),
            "remove items",
        ));
    }
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            check(item_schema, item, &path.index(i), out);
        }
    }
    match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("map") => check_map_keys(schema, items, path, out),
        Some("set") => {
            let mut seen = BTreeSet::new();
            for (i, item) in items.iter().enumerate() {
                if !seen.insert(item.to_string()) {
                    out.push(Problem::new(
                        path.index(i).to_string(),
                        format!("duplicate value {item}"),
                        "list each value once",
                    ));
                }
            }
        }
        _ => {}
    }
}

fn check_map_keys(schema: &Value, items: &[Value], path: &FieldPath, out: &mut Vec<Problem>) {
    let keys: Vec<&str> = schema
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|k| k.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut seen = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let key: Vec<String> = keys
            .iter()
            .map(|k| item.get(k).map(Value::to_string).unwrap_or_default())
            .collect();
        if !seen.insert(key.clone()) {
            out.push(Problem::new(
                path.index(i)
                    .field(keys.first().copied().unwrap_or("key"))
                    .to_string(),
                format!("duplicate {} {}", keys.join("/"), key.join("/")),
                format!("give each item of {path} its own {}", keys.join("/")),
            ));
        }
    }
}

fn check_string(schema: &Value, value: &Value, path: &FieldPath, out: &mut Vec<Problem>) {
    let Some(text) = value.as_str() else {
        out.push(type_problem(path, "a string", value));
        return;
    };
    let length = text.chars().count() as u64;
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && length < min
    {
        out.push(Problem::new(
            path.to_string(),
            if text.is_empty() {
                "must not be empty".to_owned()
            } else {
                format!("must be at least {min} characters long")
            },
            "give it a value",
        ));
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && length > max
    {
        out.push(Problem::new(
            path.to_string(),
            format!("must be at most {max} characters long, is {length}"),
            "shorten it",
        ));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        // The patterns are our own and compile; an uncompilable one is skipped, not fatal.
        if let Ok(regex) = regex::Regex::new(pattern)
            && !regex.is_match(text)
        {
            out.push(Problem::new(
                path.to_string(),
                format!("{text:?} does not match the expected form {pattern}"),
                pattern_hint(pattern),
            ));
        }
    }
    check_enum(schema, value, path, out);
}

fn pattern_hint(pattern: &str) -> String {
    if pattern.starts_with("^https?://") {
        "write a full URL starting with http:// or https://".to_owned()
    } else if pattern.starts_with("^arn:") {
        "write an SNS topic ARN such as arn:aws:sns:eu-west-2:123456789012:my-topic".to_owned()
    } else if pattern.ends_with("[smhd]$") {
        "write a number followed by s, m, h or d, e.g. 24h".to_owned()
    } else {
        "use lower-case letters, digits and '-', starting and ending with a letter or digit"
            .to_owned()
    }
}

fn check_enum(schema: &Value, value: &Value, path: &FieldPath, out: &mut Vec<Problem>) {
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let choices: Vec<String> = allowed.iter().map(Value::to_string).collect();
        out.push(Problem::new(
            path.to_string(),
            format!("{value} is not one of the allowed values"),
            format!("use one of {}", choices.join(", ")),
        ));
    }
}

fn check_number(
    schema: &Value,
    value: &Value,
    path: &FieldPath,
    out: &mut Vec<Problem>,
    integer: bool,
) {
    let number = match value.as_f64() {
        Some(n) if !integer || value.is_i64() || value.is_u64() => n,
        _ => {
            out.push(type_problem(
                path,
                if integer {
                    "a whole number"
                } else {
                    "a number"
                },
                value,
            ));
            return;
        }
    };
    let min = schema.get("minimum").and_then(Value::as_f64);
    let max = schema.get("maximum").and_then(Value::as_f64);
    let below = min.is_some_and(|m| number < m);
    let above = max.is_some_and(|m| number > m);
    if below || above {
        let range = match (min, max) {
            (Some(lo), Some(hi)) => format!("between {lo} and {hi}"),
            (Some(lo), None) => format!("at least {lo}"),
            (None, Some(hi)) => format!("at most {hi}"),
            (None, None) => unreachable!("a bound was crossed"),
        };
        out.push(Problem::new(
            path.to_string(),
            format!("{number} is out of range"),
            format!("use a value {range}"),
        ));
    }
    check_enum(schema, value, path, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(schema: Value, value: Value) -> Vec<Problem> {
        let mut out = Vec::new();
        check(&schema, &value, &FieldPath::root("spec"), &mut out);
        out
    }

    #[test]
    fn reports_every_problem_with_its_path() {
        let schema = json!({
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "size": {"type": "integer", "minimum": 1, "maximum": 10},
                "items": {"type": "array", "maxItems": 1, "items": {"type": "string", "enum": ["a", "b"]}}
            }
        });
        let found = problems(
            schema,
            json!({"size": 11, "items": ["a", "c"], "colour": "red"}),
        );
        let mut paths: Vec<&str> = found.iter().map(|p| p.path.as_str()).collect();
        paths.sort_unstable();
        assert_eq!(
            paths,
            vec![
                "spec.colour",
                "spec.items",
                "spec.items[1]",
                "spec.name",
                "spec.size"
            ]
        );
    }

    #[test]
    fn unknown_credentials_field_gets_a_secret_hint() {
        let schema = json!({"type": "object", "properties": {"region": {"type": "string"}}});
        let found = problems(schema, json!({"secretAccessKey": "x"}));
        assert_eq!(found.len(), 1);
        assert!(found[0].hint.contains("credentialsSecretRef"), "{found:?}");
    }

    #[test]
    fn nullable_fields_accept_null_and_others_do_not() {
        let schema = json!({"type": "object", "properties": {
            "a": {"type": "string", "nullable": true},
            "b": {"type": "string"}
        }});
        let found = problems(schema, json!({"a": null, "b": null}));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, "spec.b");
    }

    #[test]
    fn list_map_keys_must_be_unique() {
        let schema = json!({"type": "array", "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "properties": {"name": {"type": "string"}}}});
        let found = problems(schema, json!([{"name": "a"}, {"name": "b"}, {"name": "a"}]));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, "spec[2].name");
    }

    #[test]
    fn integers_reject_fractions_and_strings() {
        let schema = json!({"type": "integer"});
        assert_eq!(problems(schema.clone(), json!(1.5)).len(), 1);
        assert_eq!(problems(schema.clone(), json!("3")).len(), 1);
        assert!(problems(schema, json!(3)).is_empty());
    }
}
