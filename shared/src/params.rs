//! Request parameters the way GitLab (Grape) reads them.
//!
//! [`Params`] merges the query string and the body (JSON, urlencoded or multipart) into one JSON
//! object; body keys win over query keys, as in Rack. Form keys with brackets nest
//! (`info[name]=x` is `{"info":{"name":"x"}}`, `tag_list[]=a` appends) up to Rack's 100 levels,
//! and a key repeated without brackets collects its values, so `tag_list=a&tag_list=b` is a list.
//! Scalars read from a repeated key take the last value, as Rack does; an array sent where one
//! value belongs (`{"runner_id": [2, 8]}`, `runner_id[]=2`) is invalid, as in Grape.
//!
//! Handlers read parameters through a [`ParamReader`] in the order GitLab declares them; the
//! reader collects every failure and [`ParamReader::finish`] turns them into one 400 with
//! GitLab's `{"error": "a is invalid, b is missing"}` body.

use crate::error::ApiError;
use axum::body::Body;
use axum::extract::FromRequest;
use axum::http::{Request, header};
use serde_json::{Map, Value};
use std::collections::HashSet;

/// Bodies larger than this are refused with 413; a runner registration is a few kilobytes.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Rack's `param_depth_limit`: a form key nests at most this many bracket levels. Deeper keys
/// are refused with 400 before anything is built, so no parse or drop recurses further.
pub const MAX_PARAM_DEPTH: usize = 100;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Params {
    values: Map<String, Value>,
    /// Top-level keys whose list came from repeating a bare form key (`a=1&a=2`): a scalar read
    /// of one of these takes the last value. Any other list is a real array.
    repeated: HashSet<String>,
}

/// A form key nested deeper than [`MAX_PARAM_DEPTH`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooDeep;

impl From<TooDeep> for ApiError {
    fn from(_: TooDeep) -> Self {
        ApiError::BadRequest(
            format!("400 Bad request - parameters nested deeper than {MAX_PARAM_DEPTH} levels")
                .into(),
        )
    }
}

impl Params {
    /// The parameters of a query string.
    pub fn from_query(query: &str) -> Result<Self, TooDeep> {
        let mut params = Self::default();
        params.merge_form(query.as_bytes())?;
        Ok(params)
    }

    /// Parameters given as a JSON object (runnerctl builds its requests this way).
    pub fn from_json(value: &Value) -> Result<Self, ApiError> {
        let mut params = Self::default();
        params.merge_json(value.to_string().as_bytes())?;
        Ok(params)
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    /// The parameters as sent, for building pagination links.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.values
    }

    pub fn reader(&self) -> ParamReader<'_> {
        ParamReader {
            params: self,
            problems: Vec::new(),
        }
    }

    /// Parses an urlencoded string (query or body) into this parameter tree.
    pub fn merge_form(&mut self, input: &[u8]) -> Result<(), TooDeep> {
        for (key, value) in form_urlencoded::parse(input) {
            self.insert_form_pair(&key, Value::String(value.into_owned()))?;
        }
        Ok(())
    }

    fn insert_form_pair(&mut self, key: &str, value: Value) -> Result<(), TooDeep> {
        let path = split_bracket_key(key)?;
        if let [bare] = path.as_slice()
            && self.values.contains_key(*bare)
        {
            self.repeated.insert((*bare).to_owned());
        }
        insert_path(&mut self.values, &path, value);
        Ok(())
    }

    fn merge_json(&mut self, body: &[u8]) -> Result<(), ApiError> {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(object)) => {
                for key in object.keys() {
                    self.repeated.remove(key);
                }
                self.values.extend(object);
                Ok(())
            }
            Ok(Value::Null) => Ok(()),
            Ok(_) => Err(ApiError::BadRequest(
                "400 Bad request - the JSON body must be an object".into(),
            )),
            // Also serde_json's own nesting limit (128 levels), so a JSON value is never deep.
            Err(_) => Err(ApiError::BadRequest(
                "400 Bad request - the body is not valid JSON".into(),
            )),
        }
    }

    async fn merge_multipart(
        &mut self,
        boundary: String,
        body: axum::body::Bytes,
    ) -> Result<(), ApiError> {
        let stream =
            futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
        let mut multipart = multer::Multipart::new(stream, boundary);
        let malformed =
            |_| ApiError::BadRequest("400 Bad request - malformed multipart body".into());
        while let Some(field) = multipart.next_field().await.map_err(malformed)? {
            let Some(name) = field.name().map(str::to_owned) else {
                continue;
            };
            let text = field.text().await.map_err(malformed)?;
            self.insert_form_pair(&name, Value::String(text))?;
        }
        Ok(())
    }

    /// Reads the body according to its content type and merges it over the query parameters.
    pub async fn from_parts(
        query: Option<&str>,
        content_type: Option<&str>,
        body: Body,
    ) -> Result<Self, ApiError> {
        let mut params = Self::from_query(query.unwrap_or(""))?;
        let bytes = read_body(body).await?;
        // python-gitlab sends `Content-Type: application/json` with empty GET and DELETE bodies.
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(params);
        }
        let content_type = content_type.unwrap_or("");
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "application/json" => params.merge_json(&bytes)?,
            "application/x-www-form-urlencoded" => params.merge_form(&bytes)?,
            "multipart/form-data" => {
                let boundary = multer::parse_boundary(content_type).map_err(|_| {
                    ApiError::BadRequest("400 Bad request - multipart body without boundary".into())
                })?;
                params.merge_multipart(boundary, bytes).await?;
            }
            // A body of any other type carries no parameters; Grape ignores it too.
            _ => {}
        }
        Ok(params)
    }
}

/// A request body, at most [`MAX_BODY_BYTES`]: 413 past it, 400 when it cannot be read.
pub async fn read_body(body: Body) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|e| {
            if is_length_limit(&e) {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest("400 Bad request - the body could not be read".into())
            }
        })
}

fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(request: Request<Body>, _state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        Self::from_parts(parts.uri.query(), content_type, body).await
    }
}

/// `a[b][c]` -> `["a", "b", "c"]`; `a[]` -> `["a", ""]`. A key that does not follow the bracket
/// grammar is taken literally. More than [`MAX_PARAM_DEPTH`] levels is an error, found before
/// anything is allocated per level.
fn split_bracket_key(key: &str) -> Result<Vec<&str>, TooDeep> {
    let Some(open) = key.find('[') else {
        return Ok(vec![key]);
    };
    if open == 0 || !key.ends_with(']') {
        return Ok(vec![key]);
    }
    let mut parts = vec![&key[..open]];
    let mut rest = &key[open..];
    while let Some(inner) = rest.strip_prefix('[') {
        let Some(close) = inner.find(']') else {
            return Ok(vec![key]);
        };
        if parts.len() > MAX_PARAM_DEPTH {
            return Err(TooDeep);
        }
        parts.push(&inner[..close]);
        rest = &inner[close + 1..];
    }
    Ok(if rest.is_empty() { parts } else { vec![key] })
}

/// Inserts `value` at `path`. Recursion depth is the path's length, at most
/// [`MAX_PARAM_DEPTH`] + 1.
fn insert_path(map: &mut Map<String, Value>, path: &[&str], value: Value) {
    let (head, rest) = match path {
        [] => return,
        [head, rest @ ..] => (*head, rest),
    };
    match rest {
        [] => match map.get_mut(head) {
            Some(Value::Array(items)) => items.push(value),
            Some(existing @ Value::String(_)) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
            _ => {
                map.insert(head.to_owned(), value);
            }
        },
        [""] => {
            let slot = map
                .entry(head.to_owned())
                .or_insert_with(|| Value::Array(Vec::new()));
            match slot {
                Value::Array(items) => items.push(value),
                other => {
                    let first = other.take();
                    *other = Value::Array(vec![first, value]);
                }
            }
        }
        _ => {
            let slot = map
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Value::Object(inner) = slot {
                insert_path(inner, rest, value);
            }
        }
    }
}

/// Typed, validated access to [`Params`], collecting GitLab's 400 messages.
pub struct ParamReader<'a> {
    params: &'a Params,
    problems: Vec<String>,
}

impl ParamReader<'_> {
    fn invalid(&mut self, key: &str) {
        self.problems.push(format!("{key} is invalid"));
    }

    /// The last scalar sent under `key`, as text. `null` means "not given". A list is a scalar
    /// only when it came from repeating a bare form key.
    fn scalar(&mut self, key: &str) -> Option<Option<String>> {
        let value = self.params.get(key)?;
        let value = match value {
            Value::Array(items) if self.params.repeated.contains(key) => {
                items.last().unwrap_or(&Value::Null)
            }
            other => other,
        };
        Some(match value {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) => Some(n.to_string()),
            Value::Array(_) | Value::Object(_) => {
                self.invalid(key);
                None
            }
        })
    }

    /// A string parameter. An empty string is a value (GitLab applies `description=""` on update).
    pub fn string(&mut self, key: &str) -> Option<String> {
        self.scalar(key).flatten()
    }

    /// A required string: absent is `"<key> is missing"`.
    pub fn required_string(&mut self, key: &str) -> Option<String> {
        if !self.params.contains(key) {
            self.problems.push(format!("{key} is missing"));
            return None;
        }
        self.string(key)
    }

    /// A boolean: JSON booleans, 0/1, and true/false/t/f/yes/no/on/off/1/0 in any case.
    /// An empty string means "not given".
    pub fn bool(&mut self, key: &str) -> Option<bool> {
        let text = self.scalar(key).flatten()?;
        match parse_bool(&text) {
            Ok(value) => value,
            Err(NotABoolean) => {
                self.invalid(key);
                None
            }
        }
    }

    /// An integer: JSON integers and decimal strings. An empty string means "not given".
    pub fn int(&mut self, key: &str) -> Option<i64> {
        let text = self.scalar(key).flatten()?;
        if text.is_empty() {
            return None;
        }
        match text.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                self.invalid(key);
                None
            }
        }
    }

    /// One of a fixed set of values, else `"<key> does not have a valid value"`.
    pub fn one_of(&mut self, key: &str, allowed: &[&str]) -> Option<String> {
        let text = self.string(key)?;
        if allowed.contains(&text.as_str()) {
            Some(text)
        } else {
            self.problems
                .push(format!("{key} does not have a valid value"));
            None
        }
    }

    /// A tag list in any of its four shapes; see [`normalize_tags`].
    pub fn tags(&mut self, key: &str) -> Option<Vec<String>> {
        let value = self.params.get(key)?;
        let mut raw = Vec::new();
        let ok = match value {
            Value::Null => return None,
            Value::Array(items) => items.iter().all(|item| push_tag_text(item, &mut raw)),
            other => push_tag_text(other, &mut raw),
        };
        if ok {
            Some(normalize_tags(raw.iter().map(String::as_str)))
        } else {
            self.invalid(key);
            None
        }
    }

    /// A list of strings (`script`): a JSON array, `key[]=` or repeated keys, or one string.
    /// Each element is kept as sent (no splitting on commas, unlike tags).
    pub fn strings(&mut self, key: &str) -> Option<Vec<String>> {
        let value = self.params.get(key)?;
        let items: Vec<&Value> = match value {
            Value::Null => return None,
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Value::String(s) => out.push(s.clone()),
                Value::Number(n) => out.push(n.to_string()),
                _ => {
                    self.invalid(key);
                    return None;
                }
            }
        }
        Some(out)
    }

    /// A nested object (`info`), else `"<key> is invalid"`.
    pub fn object(&mut self, key: &str) -> Option<&Map<String, Value>> {
        match self.params.get(key)? {
            Value::Object(map) => Some(map),
            Value::Null => None,
            _ => {
                self.invalid(key);
                None
            }
        }
    }

    /// Grape's `mutually_exclusive`: both present is `"a, b are mutually exclusive"`.
    pub fn mutually_exclusive(&mut self, a: &str, b: &str) {
        if self.params.contains(a) && self.params.contains(b) {
            self.problems
                .push(format!("{a}, {b} are mutually exclusive"));
        }
    }

    /// Records a problem found by the caller (e.g. an `at_least_one_of` rule).
    pub fn problem(&mut self, message: impl Into<String>) {
        self.problems.push(message.into());
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ApiError::InvalidParams(self.problems))
        }
    }
}

fn push_tag_text(value: &Value, out: &mut Vec<String>) -> bool {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Null => {}
        _ => return false,
    }
    true
}

/// A text that is none of the accepted boolean spellings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotABoolean;

pub fn parse_bool(text: &str) -> Result<Option<bool>, NotABoolean> {
    match text.to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "true" | "t" | "yes" | "on" | "1" => Ok(Some(true)),
        "false" | "f" | "no" | "off" | "0" => Ok(Some(false)),
        _ => Err(NotABoolean),
    }
}

/// GitLab's tag list rules: every part split on `,` and trimmed, empty parts dropped, duplicates
/// removed keeping the first. Case is kept (matching is case-sensitive).
/// Linear in the input: a body may carry a hundred thousand tags before validation refuses
/// more than 50.
pub fn normalize_tags<'a>(parts: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut seen: HashSet<&'a str> = HashSet::new();
    parts
        .into_iter()
        .flat_map(|part| part.split(','))
        .map(str::trim)
        .filter(|tag| !tag.is_empty() && seen.insert(tag))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    async fn parse(
        query: &str,
        content_type: &str,
        body: impl Into<Body>,
    ) -> Result<Params, ApiError> {
        Params::from_parts(Some(query), Some(content_type), body.into()).await
    }

    fn json_params(value: Value) -> Params {
        Params {
            values: value.as_object().unwrap().clone(),
            repeated: HashSet::new(),
        }
    }

    fn query(text: &str) -> Params {
        Params::from_query(text).unwrap()
    }

    fn problems(result: Result<(), ApiError>) -> String {
        match result {
            Err(e) => e.body()["error"].as_str().unwrap_or_default().to_owned(),
            Ok(()) => String::new(),
        }
    }

    #[test]
    fn every_boolean_spelling() {
        for yes in [
            "true", "True", "TRUE", "t", "T", "yes", "Yes", "on", "ON", "1",
        ] {
            assert_eq!(parse_bool(yes), Ok(Some(true)), "{yes}");
        }
        for no in [
            "false", "False", "FALSE", "f", "F", "no", "NO", "off", "Off", "0",
        ] {
            assert_eq!(parse_bool(no), Ok(Some(false)), "{no}");
        }
        assert_eq!(parse_bool(""), Ok(None));
        for bad in ["maybe", "2", "truee", " true"] {
            assert_eq!(parse_bool(bad), Err(NotABoolean), "{bad}");
        }
    }

    #[test]
    fn booleans_from_query_and_json() {
        let params = query("run_untagged=False&locked=yes&active=bogus");
        let mut r = params.reader();
        assert_eq!(r.bool("run_untagged"), Some(false));
        assert_eq!(r.bool("locked"), Some(true));
        assert_eq!(r.bool("active"), None);
        assert_eq!(r.bool("absent"), None);
        assert_eq!(problems(r.finish()), "active is invalid");

        let params = json_params(json!({"a": true, "b": false, "c": 1, "d": null, "e": "x"}));
        let mut r = params.reader();
        assert_eq!(
            (r.bool("a"), r.bool("b"), r.bool("c"), r.bool("d")),
            (Some(true), Some(false), Some(true), None)
        );
        assert_eq!(r.bool("e"), None);
        assert_eq!(problems(r.finish()), "e is invalid");
    }

    #[test]
    fn integers() {
        let params = query("a=9000&b=&c=ten&d=1.5");
        let mut r = params.reader();
        assert_eq!(r.int("a"), Some(9000));
        assert_eq!(r.int("b"), None, "an empty string means not given");
        assert_eq!(r.int("c"), None);
        assert_eq!(r.int("d"), None);
        assert_eq!(problems(r.finish()), "c is invalid, d is invalid");
        let params = json_params(json!({"n": 600}));
        assert_eq!(params.reader().int("n"), Some(600));
    }

    #[tokio::test]
    async fn tag_list_in_all_four_shapes() {
        let expected = vec!["a".to_owned(), "b".to_owned()];
        let shapes = [
            parse("", "application/json", r#"{"tag_list":["a","b"]}"#)
                .await
                .unwrap(),
            parse("", "application/json", r#"{"tag_list":"a, b"}"#)
                .await
                .unwrap(),
            parse(
                "",
                "application/x-www-form-urlencoded",
                "tag_list=a&tag_list=b",
            )
            .await
            .unwrap(),
            parse(
                "",
                "application/x-www-form-urlencoded",
                "tag_list%5B%5D=a&tag_list%5B%5D=b",
            )
            .await
            .unwrap(),
            parse("tag_list=a,b", "", "").await.unwrap(),
        ];
        for params in shapes {
            assert_eq!(
                params.reader().tags("tag_list"),
                Some(expected.clone()),
                "{params:?}"
            );
        }
    }

    #[test]
    fn tag_normalisation() {
        assert_eq!(normalize_tags(["tag1, tag2"]), ["tag1", "tag2"]);
        assert_eq!(normalize_tags([" a ,, b", "a", "B", ""]), ["a", "b", "B"]);
        assert_eq!(normalize_tags(["a,b", "c,a"]), ["a", "b", "c"]);
        assert!(normalize_tags([" , "]).is_empty());
    }

    #[test]
    fn bad_tag_list_is_invalid() {
        let params = json_params(json!({"tag_list": [{"x": 1}]}));
        let mut r = params.reader();
        assert_eq!(r.tags("tag_list"), None);
        assert_eq!(problems(r.finish()), "tag_list is invalid");
    }

    #[tokio::test]
    async fn bracket_keys_nest() {
        let params = parse(
            "",
            "application/x-www-form-urlencoded",
            "token=t&info%5Bname%5D=x&info[version]=1.2",
        )
        .await
        .unwrap();
        assert_eq!(
            params.get("info"),
            Some(&json!({"name": "x", "version": "1.2"}))
        );
        assert_eq!(params.reader().string("token").as_deref(), Some("t"));
    }

    #[tokio::test]
    async fn body_wins_over_query_and_repeated_scalars_take_the_last() {
        let params = parse(
            "token=query&description=q",
            "application/json",
            r#"{"token":"body"}"#,
        )
        .await
        .unwrap();
        let mut r = params.reader();
        assert_eq!(r.string("token").as_deref(), Some("body"));
        assert_eq!(r.string("description").as_deref(), Some("q"));
        let params = query("token=a&token=b");
        assert_eq!(params.reader().string("token").as_deref(), Some("b"));
    }

    #[tokio::test]
    async fn multipart_bodies() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"token\"\r\n\r\nreg\r\n\
                    --XyZ\r\nContent-Disposition: form-data; name=\"info[name]\"\r\n\r\nbox\r\n--XyZ--\r\n";
        let params = parse("", "multipart/form-data; boundary=XyZ", body)
            .await
            .unwrap();
        assert_eq!(params.get("token"), Some(&json!("reg")));
        assert_eq!(params.get("info"), Some(&json!({"name": "box"})));
    }

    #[tokio::test]
    async fn json_content_type_with_empty_body_is_fine() {
        let params = parse("private_token=x", "application/json", "")
            .await
            .unwrap();
        assert_eq!(params.get("private_token"), Some(&json!("x")));
    }

    #[tokio::test]
    async fn malformed_bodies_are_400_with_a_json_message() {
        for (content_type, body) in [
            ("application/json", "{not json"),
            ("application/json", "[1,2]"),
            ("multipart/form-data; boundary=XyZ", "garbage"),
        ] {
            let error = parse("", content_type, body).await.unwrap_err();
            assert_eq!(error.status().as_u16(), 400, "{body}");
            assert!(error.body()["message"].is_string(), "{body}");
        }
    }

    #[tokio::test]
    async fn oversized_bodies_are_413() {
        let big = "a".repeat(MAX_BODY_BYTES + 1);
        let error = Params::from_parts(None, Some("text/plain"), Body::from(big))
            .await
            .unwrap_err();
        assert_eq!(error.status().as_u16(), 413);
        assert_eq!(
            error.body().to_string(),
            r#"{"message":"413 Request Entity Too Large"}"#
        );
    }

    #[test]
    fn missing_and_enumerations() {
        let params = query("access_level=sometimes");
        let mut r = params.reader();
        assert_eq!(r.required_string("token"), None);
        assert_eq!(
            r.one_of("access_level", &["not_protected", "ref_protected"]),
            None
        );
        assert_eq!(
            problems(r.finish()),
            "token is missing, access_level does not have a valid value"
        );
    }

    #[test]
    fn objects_and_exclusivity() {
        let params = query("info=flat&active=true&paused=false");
        let mut r = params.reader();
        assert!(r.object("info").is_none());
        r.mutually_exclusive("active", "paused");
        assert_eq!(
            problems(r.finish()),
            "info is invalid, active, paused are mutually exclusive"
        );
    }

    #[test]
    fn odd_bracket_keys_are_literal() {
        assert_eq!(split_bracket_key("a[b]c"), Ok(vec!["a[b]c"]));
        assert_eq!(split_bracket_key("[x]"), Ok(vec!["[x]"]));
        assert_eq!(split_bracket_key("a[b][]"), Ok(vec!["a", "b", ""]));
    }

    fn nested_key(levels: usize) -> String {
        format!("a{}", "[b]".repeat(levels))
    }

    #[tokio::test]
    async fn nesting_is_bounded_at_racks_limit_in_every_body_shape() {
        let deepest = format!("{}=x", nested_key(MAX_PARAM_DEPTH));
        let params = query(&deepest);
        let mut value = params.get("a").unwrap();
        for _ in 1..MAX_PARAM_DEPTH {
            value = &value["b"];
        }
        assert_eq!(value, &json!({"b": "x"}), "100 levels are kept");

        // 60,000 levels in 180 KB: used to overflow the stack while parsing and dropping.
        let hostile = format!("{}=x", nested_key(60_000));
        let too_deep = format!("{}=x", nested_key(MAX_PARAM_DEPTH + 1));
        for key in [&too_deep, &hostile] {
            assert_eq!(Params::from_query(key), Err(TooDeep));
            let error = parse("", "application/x-www-form-urlencoded", key.clone())
                .await
                .unwrap_err();
            assert_eq!(
                (error.status().as_u16(), error.body()),
                (
                    400,
                    json!({"message": "400 Bad request - parameters nested deeper than 100 levels"})
                )
            );
            let name = key.trim_end_matches("=x");
            let multipart = format!(
                "--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\nx\r\n--XyZ--\r\n"
            );
            let error = parse("", "multipart/form-data; boundary=XyZ", multipart)
                .await
                .unwrap_err();
            assert_eq!(error.status().as_u16(), 400);
            assert!(error.body()["message"].is_string());
        }
        let error = parse(&hostile, "", "").await.unwrap_err();
        assert_eq!(error.status().as_u16(), 400, "in the query string too");
    }

    #[tokio::test]
    async fn an_array_where_one_value_belongs_is_invalid() {
        for params in [
            parse("", "application/json", r#"{"runner_id":[2,8]}"#)
                .await
                .unwrap(),
            query("runner_id[]=2&runner_id[]=8"),
            parse("", "application/json", r#"{"runner_id":{"a":8}}"#)
                .await
                .unwrap(),
        ] {
            let mut r = params.reader();
            assert_eq!(r.int("runner_id"), None, "{params:?}");
            assert_eq!(problems(r.finish()), "runner_id is invalid");
        }
        let params = parse("", "application/json", r#"{"token":["a","b"]}"#)
            .await
            .unwrap();
        let mut r = params.reader();
        assert_eq!(r.string("token"), None);
        assert_eq!(problems(r.finish()), "token is invalid");

        // A repeated bare key is Rack's "last one wins", in the query, a form or across both.
        assert_eq!(
            query("runner_id=2&runner_id=8").reader().int("runner_id"),
            Some(8)
        );
        let params = parse("token=q", "application/x-www-form-urlencoded", "token=b")
            .await
            .unwrap();
        assert_eq!(params.reader().string("token").as_deref(), Some("b"));
        // A JSON body replaces a repeated query key, and its array is an array again.
        let params = parse("id=1&id=2", "application/json", r#"{"id":[3]}"#)
            .await
            .unwrap();
        assert_eq!(params.reader().int("id"), None);
    }

    #[test]
    fn many_tags_are_normalised_in_one_pass() {
        // 120,000 distinct tags plus each again: the old pairwise check took ~20 s here.
        let text: Vec<String> = (0..120_000).map(|i| format!("t{i}")).collect();
        let twice = text.iter().chain(text.iter()).map(String::as_str);
        let tags = normalize_tags(twice);
        assert_eq!(tags.len(), 120_000);
        assert_eq!(tags.first().map(String::as_str), Some("t0"));
        assert_eq!(tags.last().map(String::as_str), Some("t119999"));
    }
}
