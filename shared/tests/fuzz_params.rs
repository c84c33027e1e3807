//! Property tests over everything that reads raw client input before authentication: the
//! parameter parser (query, urlencoded, JSON and multipart bodies), the typed reader, the path
//! parameters and tag normalisation. Any input is either read or refused with a JSON 400/413;
//! none panics (with `panic = abort` a panic would kill the process). Cases per property:
//! `PROPTEST_CASES` (CI runs the default 256; raise it for a longer hunt).

use axum::body::Body;
use proptest::prelude::*;
use runners_shared::http::PathParams;
use runners_shared::params::{MAX_PARAM_DEPTH, Params, normalize_tags};
use std::collections::HashSet;

const CONTENT_TYPES: [&str; 5] = [
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=B",
    "multipart/form-data",
    "text/plain",
];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
}

/// Form-ish text: keys with brackets, separators and escapes are far likelier than in random
/// bytes.
fn formish() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("[".to_owned()),
            Just("]".to_owned()),
            Just("[]".to_owned()),
            Just("=".to_owned()),
            Just("&".to_owned()),
            Just("%".to_owned()),
            Just("%FF".to_owned()),
            Just(",".to_owned()),
            Just("tag_list".to_owned()),
            Just("info".to_owned()),
            Just("token".to_owned()),
            "[a-z0-9]{1,3}",
        ],
        0..64,
    )
    .prop_map(|parts| parts.concat())
}

/// JSON-ish text: nesting, arrays where scalars belong, odd numbers.
fn jsonish() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("1e999".to_owned()),
        Just("-0".to_owned()),
        Just("18446744073709551616".to_owned()),
        "\"[a-z,\\\\]{0,5}\"",
    ];
    leaf.prop_recursive(6, 48, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4)
                .prop_map(|v| format!("[{}]", v.join(","))),
            proptest::collection::vec(("(token|tag_list|info|runner_id|page)", inner), 0..4)
                .prop_map(|v| {
                    let fields: Vec<String> =
                        v.into_iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                    format!("{{{}}}", fields.join(","))
                }),
        ]
    })
}

/// Every reader method on every key the handlers read.
fn read_everything(params: &Params) {
    let mut reader = params.reader();
    for key in [
        "token",
        "description",
        "info",
        "tag_list",
        "runner_id",
        "page",
        "per_page",
    ] {
        let _ = reader.string(key);
        let _ = reader.int(key);
        let _ = reader.bool(key);
        let _ = reader.tags(key);
        let _ = reader.one_of(key, &["a", "b"]);
        let _ = reader.object(key).map(|o| o.len());
    }
    if let Err(error) = reader.finish() {
        assert_eq!(error.status().as_u16(), 400);
        assert!(error.body()["error"].is_string());
    }
}

fn check_body(runtime: &tokio::runtime::Runtime, query: &str, content_type: &str, body: Vec<u8>) {
    let parsed = runtime.block_on(Params::from_parts(
        Some(query),
        Some(content_type),
        Body::from(body),
    ));
    match parsed {
        Ok(params) => read_everything(&params),
        Err(error) => {
            assert!(
                matches!(error.status().as_u16(), 400 | 413),
                "{content_type}: {error}"
            );
            assert!(error.body()["message"].is_string(), "{error}");
        }
    }
}

proptest! {
    #[test]
    fn any_body_is_read_or_refused_with_json(
        query in formish(),
        body in prop_oneof![
            formish().prop_map(String::into_bytes),
            jsonish().prop_map(String::into_bytes),
            proptest::collection::vec(any::<u8>(), 0..256),
        ],
        content_type in proptest::sample::select(CONTENT_TYPES.to_vec()),
    ) {
        check_body(&runtime(), &query, content_type, body);
    }

    #[test]
    fn multipart_field_names_are_bounded_like_form_keys(name in formish(), value in "[ -~]{0,8}") {
        let body = format!(
            "--B\r\nContent-Disposition: form-data; name=\"{}\"\r\n\r\n{value}\r\n--B--\r\n",
            name.replace('"', "")
        );
        check_body(&runtime(), "", "multipart/form-data; boundary=B", body.into_bytes());
    }

    #[test]
    fn nesting_is_refused_exactly_past_the_limit(levels in 0usize..400, tail in "[a-z]{0,3}") {
        let key = format!("a{}{tail}", "[b]".repeat(levels));
        let parsed = Params::from_query(&format!("{key}=x"));
        // A key with text after its last bracket is literal, whatever its depth.
        let literal = !tail.is_empty() && levels > 0;
        prop_assert_eq!(parsed.is_ok(), literal || levels <= MAX_PARAM_DEPTH);
    }

    #[test]
    fn path_params_never_fail_and_round_trip_what_was_encoded(
        segment in "[ -~\\u{80}-\\u{10ffff}]{0,24}",
        raw in "[%0-9A-Fa-f/a-z]{0,24}",
    ) {
        let encoded = percent_encoding::utf8_percent_encode(
            &segment,
            percent_encoding::NON_ALPHANUMERIC,
        )
        .to_string();
        let params = PathParams::from_route(
            "/api/v4/projects/{id}/runners",
            &format!("/api/v4/projects/{encoded}/runners"),
        );
        prop_assert_eq!(params.get("id"), Some(segment.as_str()));
        // Anything at all in the raw path: decoded or None, never a panic.
        let params =
            PathParams::from_route("/api/v4/runners/{id}", &format!("/api/v4/runners/{raw}"));
        let _ = params.get("id");
    }

    #[test]
    fn normalised_tags_are_unique_trimmed_and_in_first_seen_order(
        parts in proptest::collection::vec("[ ,a-c]{0,6}", 0..20),
    ) {
        let tags = normalize_tags(parts.iter().map(String::as_str));
        let mut seen = HashSet::new();
        for tag in &tags {
            prop_assert!(!tag.is_empty() && !tag.contains(',') && tag.trim() == tag);
            prop_assert!(seen.insert(tag.clone()), "duplicate {}", tag);
        }
        let mut first_seen: Vec<&str> = Vec::new();
        for tag in parts.iter().flat_map(|p| p.split(',')).map(str::trim) {
            if !tag.is_empty() && !first_seen.contains(&tag) {
                first_seen.push(tag);
            }
        }
        prop_assert_eq!(tags.iter().map(String::as_str).collect::<Vec<_>>(), first_seen);
    }
}
