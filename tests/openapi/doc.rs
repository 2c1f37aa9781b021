//! `docs/openapi.yaml` read as data for `tests/openapi.rs`: its operations,
//! `$ref` resolution, and a small JSON Schema checker for the subset of
//! OpenAPI 3.0 schema keywords the document uses.
//!
//! The checker refuses (panics on) any keyword it does not implement, so the
//! document cannot promise something the test silently skips.

use serde_json::Value;

/// The HTTP methods an OpenAPI path item may hold, as its keys spell them.
pub const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Keywords [`check`] implements or knows to be annotations only.
const KEYWORDS: [&str; 19] = [
    "$ref",
    "maxLength",
    "type",
    "nullable",
    "enum",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "pattern",
    "format",
    "minimum",
    "maximum",
    "minLength",
    "minItems",
    "writeOnly",
    "readOnly",
    "description",
    "example",
];

/// Whether a value travels to the server or back (`writeOnly` / `readOnly`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Request,
    Response,
}

/// The parsed document.
pub struct Doc {
    pub root: Value,
}

/// One documented operation.
pub struct Op<'a> {
    /// Upper case, as on the wire.
    pub method: String,
    pub path: &'a str,
    pub op: &'a Value,
    /// Path-item and operation parameters, resolved.
    pub params: Vec<&'a Value>,
}

impl Doc {
    pub fn load() -> Self {
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.yaml");
        let text = std::fs::read_to_string(file).unwrap();
        let root: Value = serde_yaml_ng::from_str(&text).unwrap();
        let version = root["openapi"].as_str().unwrap_or_default();
        assert!(version.starts_with("3.0."), "openapi: {version:?}");
        Self { root }
    }

    /// `v`, or what its `$ref` (a local `#/...` pointer) names, followed to the end.
    pub fn resolve<'a>(&'a self, mut v: &'a Value) -> &'a Value {
        while let Some(r) = v.get("$ref").and_then(Value::as_str) {
            let pointer = r
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("only local $ref: {r}"));
            v = self
                .root
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling $ref {r}"));
        }
        v
    }

    /// Every operation, in document order.
    pub fn operations(&self) -> Vec<Op<'_>> {
        let paths = self.root["paths"].as_object().unwrap();
        let mut out = Vec::new();
        for (path, item) in paths {
            let item = item.as_object().unwrap();
            for key in item.keys() {
                assert!(
                    METHODS.contains(&key.as_str())
                        || ["parameters", "summary", "description"].contains(&key.as_str()),
                    "{path}: unexpected path item key {key:?}"
                );
            }
            for method in METHODS {
                let Some(op) = item.get(method) else { continue };
                let params = [item.get("parameters"), op.get("parameters")]
                    .into_iter()
                    .flatten()
                    .flat_map(|p| p.as_array().unwrap())
                    .map(|p| self.resolve(p))
                    .collect();
                out.push(Op {
                    method: method.to_uppercase(),
                    path,
                    op,
                    params,
                });
            }
        }
        out
    }

    /// The operation whose path template matches the concrete `path`.
    pub fn find(&self, method: &str, path: &str) -> Option<Op<'_>> {
        self.operations()
            .into_iter()
            .find(|o| o.method == method && template_matches(o.path, path))
    }

    /// Whether some documented path template matches `path`.
    pub fn has_path(&self, path: &str) -> bool {
        let paths = self.root["paths"].as_object().unwrap();
        paths.keys().any(|t| template_matches(t, path))
    }

    /// Where the document has an object schema with properties that does not
    /// say whether others may appear (drift in a response would go unseen).
    pub fn open_objects(&self) -> Vec<String> {
        fn walk(v: &Value, at: String, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    if m.contains_key("properties") && !m.contains_key("additionalProperties") {
                        out.push(at.clone());
                    }
                    for (k, v) in m {
                        walk(v, format!("{at}/{k}"), out);
                    }
                }
                Value::Array(a) => {
                    for (i, v) in a.iter().enumerate() {
                        walk(v, format!("{at}/{i}"), out);
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(&self.root, String::new(), &mut out);
        out
    }

    /// Panic unless `value` validates against `schema`, naming `what`.
    pub fn assert_valid(&self, schema: &Value, value: &Value, dir: Direction, what: &str) {
        let mut problems = Vec::new();
        check(self, schema, value, "$", dir, &mut problems);
        assert!(
            problems.is_empty(),
            "{what}: does not match the documented schema:\n  {}\nvalue: {value}",
            problems.join("\n  ")
        );
    }
}

impl Op<'_> {
    /// `METHOD /path/{template}`.
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// Whether the operation needs the admin bearer token.
    pub fn needs_token(&self, doc: &Doc) -> bool {
        let security = self.op.get("security").unwrap_or(&doc.root["security"]);
        let alternatives = security.as_array().unwrap();
        for alt in alternatives {
            for scheme in alt.as_object().unwrap().keys() {
                assert_eq!(scheme, "adminToken", "{}: unknown scheme", self.key());
            }
        }
        !alternatives.is_empty()
    }

    /// The documented response for `status`, resolved.
    pub fn response<'d>(&'d self, doc: &'d Doc, status: u16) -> Option<&'d Value> {
        self.op["responses"]
            .get(status.to_string())
            .map(|r| doc.resolve(r))
    }

    /// The documented status codes.
    pub fn statuses(&self) -> Vec<u16> {
        self.op["responses"]
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.parse().unwrap())
            .collect()
    }

    /// The JSON request body's schema and example, if it takes a body.
    pub fn request_body<'d>(&'d self, doc: &'d Doc) -> Option<(&'d Value, &'d Value)> {
        let body = doc.resolve(self.op.get("requestBody")?);
        let media = &body["content"]["application/json"];
        let example = media
            .get("example")
            .unwrap_or_else(|| panic!("{}: request body without an example", self.key()));
        Some((&media["schema"], example))
    }

    /// The concrete path and query: each parameter's example, or the
    /// value `overrides` gives for its name.
    pub fn target(&self, overrides: &[(&str, &str)]) -> String {
        let mut path = self.path.to_owned();
        let mut query = Vec::new();
        for p in &self.params {
            let name = p["name"].as_str().unwrap();
            let value = overrides
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
                .or_else(|| match &p["example"] {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("{}: parameter {name} has no example", self.key()));
            match p["in"].as_str().unwrap() {
                "path" => path = path.replace(&format!("{{{name}}}"), &value),
                "query" => query.push(format!("{name}={value}")),
                other => panic!("{}: parameter in {other} not supported", self.key()),
            }
        }
        if query.is_empty() {
            path
        } else {
            format!("{path}?{}", query.join("&"))
        }
    }
}

fn template_matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| t == p || (t.starts_with('{') && !p.is_empty()))
}

/// Add to `problems` every way `value` (at `at`) breaks `schema`.
pub fn check(
    doc: &Doc,
    schema: &Value,
    value: &Value,
    at: &str,
    dir: Direction,
    problems: &mut Vec<String>,
) {
    let schema = doc.resolve(schema);
    let s = schema.as_object().unwrap();
    for k in s.keys() {
        assert!(
            KEYWORDS.contains(&k.as_str()),
            "schema keyword {k:?} is not supported by tests/openapi/doc.rs"
        );
    }
    if value.is_null() {
        if s.get("nullable") != Some(&Value::Bool(true)) {
            problems.push(format!("{at}: null but not nullable"));
        }
        return;
    }
    if let Some(values) = s.get("enum").and_then(Value::as_array)
        && !values.contains(value)
    {
        problems.push(format!("{at}: {value} not in {values:?}"));
    }
    let ty = s.get("type").and_then(Value::as_str).unwrap_or_else(|| {
        panic!("schema at {at} without a type: {schema}");
    });
    let ok = match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        other => panic!("type {other:?}"),
    };
    if !ok {
        problems.push(format!("{at}: expected {ty}, got {value}"));
        return;
    }
    if let Some(n) = value.as_f64() {
        let min = s.get("minimum").and_then(Value::as_f64);
        let max = s.get("maximum").and_then(Value::as_f64);
        if min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m) {
            problems.push(format!("{at}: {n} outside [{min:?}, {max:?}]"));
        }
    }
    if let Some(text) = value.as_str() {
        check_string(s, text, at, problems);
    }
    if let Some(items) = value.as_array() {
        let min = s.get("minItems").and_then(Value::as_u64).unwrap_or(0);
        if (items.len() as u64) < min {
            problems.push(format!("{at}: fewer than {min} items"));
        }
        let item_schema = s.get("items").expect("array schema without items");
        for (i, item) in items.iter().enumerate() {
            check(doc, item_schema, item, &format!("{at}[{i}]"), dir, problems);
        }
    }
    if let Some(object) = value.as_object() {
        check_object(doc, s, object, at, dir, problems);
    }
}

fn check_string(
    s: &serde_json::Map<String, Value>,
    text: &str,
    at: &str,
    problems: &mut Vec<String>,
) {
    let min = s.get("minLength").and_then(Value::as_u64).unwrap_or(0);
    if (text.chars().count() as u64) < min {
        problems.push(format!("{at}: shorter than {min}"));
    }
    // JSON Schema counts characters; tollgate's limits are bytes, which
    // are never fewer.
    if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
        && text.len() as u64 > max
    {
        problems.push(format!("{at}: longer than {max}"));
    }
    if let Some(p) = s.get("pattern").and_then(Value::as_str)
        && !regex::Regex::new(p).unwrap().is_match(text)
    {
        problems.push(format!("{at}: {text:?} does not match {p}"));
    }
    match s.get("format").and_then(Value::as_str) {
        None => {}
        Some("date-time") => {
            let rfc3339 = time::format_description::well_known::Rfc3339;
            if time::OffsetDateTime::parse(text, &rfc3339).is_err() {
                problems.push(format!("{at}: {text:?} is not RFC 3339"));
            }
        }
        Some(other) => panic!("format {other:?} is not supported by the checker"),
    }
}

fn check_object(
    doc: &Doc,
    s: &serde_json::Map<String, Value>,
    object: &serde_json::Map<String, Value>,
    at: &str,
    dir: Direction,
    problems: &mut Vec<String>,
) {
    let empty = serde_json::Map::new();
    let properties = s
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for name in s
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = name.as_str().unwrap();
        if !object.contains_key(name) {
            problems.push(format!("{at}: missing required {name:?}"));
        }
    }
    for (name, v) in object {
        let here = format!("{at}.{name}");
        if let Some(p) = properties.get(name) {
            let p_resolved = doc.resolve(p);
            let forbidden = match dir {
                Direction::Request => "readOnly",
                Direction::Response => "writeOnly",
            };
            if p_resolved.get(forbidden) == Some(&Value::Bool(true)) {
                problems.push(format!("{here}: {forbidden} property present"));
            }
            check(doc, p, v, &here, dir, problems);
            continue;
        }
        match s.get("additionalProperties") {
            Some(Value::Bool(false)) => problems.push(format!("{here}: not documented")),
            Some(Value::Bool(true)) | None => {}
            Some(extra) => check(doc, extra, v, &here, dir, problems),
        }
    }
}
