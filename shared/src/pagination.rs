//! GitLab's offset pagination: `page` and `per_page`, and the `X-*` and `Link` headers.
//!
//! A lister reads matching items in id order until it has [`PageRequest::scan_limit`] of them or
//! runs out, then [`PageRequest::cut`] slices the page and says what the headers need. Past
//! [`COUNT_LIMIT`] matches the total is not counted (as GitLab does): `X-Total`,
//! `X-Total-Pages` and `rel="last"` are then left out.

use crate::params::ParamReader;
use serde_json::{Map, Value};

pub const DEFAULT_PER_PAGE: u64 = 20;
pub const MAX_PER_PAGE: u64 = 100;
pub const COUNT_LIMIT: u64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: u64,
    pub per_page: u64,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            page: 1,
            per_page: DEFAULT_PER_PAGE,
        }
    }
}

impl PageRequest {
    /// `page` below 1 means 1; `per_page` above 100 means 100; `per_page` 0 or below is GitLab's
    /// 400 `per_page does not have a valid value`.
    pub fn read(reader: &mut ParamReader<'_>) -> Self {
        let page = reader.int("page");
        let per_page = reader.int("per_page");
        if per_page.is_some_and(|p| p <= 0) {
            reader.problem("per_page does not have a valid value");
        }
        Self {
            page: page.filter(|p| *p >= 1).map_or(1, i64::unsigned_abs),
            per_page: per_page
                .filter(|p| *p > 0)
                .map_or(DEFAULT_PER_PAGE, |p| p.unsigned_abs().min(MAX_PER_PAGE)),
        }
    }

    pub fn offset(&self) -> u64 {
        (self.page - 1).saturating_mul(self.per_page)
    }

    pub fn end(&self) -> u64 {
        self.offset().saturating_add(self.per_page)
    }

    /// How many matches a lister needs: the page itself, and enough to count up to the limit,
    /// plus one to know whether there is more.
    pub fn scan_limit(&self) -> u64 {
        self.end().max(COUNT_LIMIT).saturating_add(1)
    }

    /// Cuts this page out of the matches found in order. `exhausted` says the lister saw every
    /// match (rather than stopping at the scan limit).
    pub fn cut<T>(&self, mut matches: Vec<T>, exhausted: bool) -> (Vec<T>, PageInfo) {
        let found = matches.len() as u64;
        let info = PageInfo {
            page: self.page,
            per_page: self.per_page,
            total: exhausted.then_some(found),
            has_next: found > self.end(),
        };
        let start = usize::try_from(self.offset())
            .unwrap_or(usize::MAX)
            .min(matches.len());
        let end = usize::try_from(self.end())
            .unwrap_or(usize::MAX)
            .min(matches.len());
        matches.truncate(end);
        (matches.split_off(start), info)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageInfo {
    pub page: u64,
    pub per_page: u64,
    /// `None` when counting stopped past the limit.
    pub total: Option<u64>,
    pub has_next: bool,
}

impl PageInfo {
    fn total_pages(&self) -> Option<u64> {
        self.total.map(|t| t.div_ceil(self.per_page))
    }

    /// Kaminari's `prev_page`: none on the first page or on a page past the last.
    fn prev_page(&self) -> Option<u64> {
        let out_of_range = self.total_pages().is_some_and(|pages| self.page > pages);
        (self.page > 1 && !out_of_range).then(|| self.page - 1)
    }

    fn next_page(&self) -> Option<u64> {
        self.has_next.then_some(self.page + 1)
    }

    /// The headers GitLab sends with every list. `url` is the absolute URL of the request
    /// without its query; `query` the parameters the client sent.
    pub fn headers(&self, url: &str, query: &Map<String, Value>) -> Vec<(&'static str, String)> {
        let text = |n: Option<u64>| n.map(|n| n.to_string()).unwrap_or_default();
        let mut headers = vec![
            ("x-page", self.page.to_string()),
            ("x-per-page", self.per_page.to_string()),
            ("x-next-page", text(self.next_page())),
            ("x-prev-page", text(self.prev_page())),
        ];
        if let (Some(total), Some(pages)) = (self.total, self.total_pages()) {
            headers.push(("x-total", total.to_string()));
            headers.push(("x-total-pages", pages.max(1).to_string()));
        }
        let link = |page: u64, rel: &str| {
            format!(
                "<{}>; rel=\"{rel}\"",
                page_url(url, query, page, self.per_page)
            )
        };
        let mut links = Vec::new();
        if let Some(prev) = self.prev_page() {
            links.push(link(prev, "prev"));
        }
        if let Some(next) = self.next_page() {
            links.push(link(next, "next"));
        }
        links.push(link(1, "first"));
        if let Some(pages) = self.total_pages() {
            links.push(link(pages.max(1), "last"));
        }
        headers.push(("link", links.join(", ")));
        headers
    }
}

/// The URL of another page: every parameter the client sent, `page` and `per_page` set, keys
/// sorted as Rails' `to_query` sorts them.
pub fn page_url(url: &str, query: &Map<String, Value>, page: u64, per_page: u64) -> String {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (key, value) in query {
        if key != "page" && key != "per_page" {
            flatten(key, value, &mut pairs);
        }
    }
    pairs.push(("page".into(), page.to_string()));
    pairs.push(("per_page".into(), per_page.to_string()));
    pairs.sort();
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (key, value) in &pairs {
        serializer.append_pair(key, value);
    }
    format!("{url}?{}", serializer.finish())
}

fn flatten(key: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Null => out.push((key.to_owned(), String::new())),
        Value::String(s) => out.push((key.to_owned(), s.clone())),
        Value::Bool(b) => out.push((key.to_owned(), b.to_string())),
        Value::Number(n) => out.push((key.to_owned(), n.to_string())),
        Value::Array(items) => items
            .iter()
            .for_each(|item| flatten(&format!("{key}[]"), item, out)),
        Value::Object(map) => map
            .iter()
            .for_each(|(k, v)| flatten(&format!("{key}[{k}]"), v, out)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Params;

    fn request(query: &str) -> Result<PageRequest, crate::ApiError> {
        let params = Params::from_query(query).unwrap();
        let mut reader = params.reader();
        let page = PageRequest::read(&mut reader);
        reader.finish().map(|()| page)
    }

    #[test]
    fn parameters() {
        assert_eq!(
            request("").unwrap(),
            PageRequest {
                page: 1,
                per_page: 20
            }
        );
        assert_eq!(
            request("page=0&per_page=500").unwrap(),
            PageRequest {
                page: 1,
                per_page: 100
            }
        );
        assert_eq!(
            request("page=-3&per_page=7").unwrap(),
            PageRequest {
                page: 1,
                per_page: 7
            }
        );
        for bad in ["per_page=0", "per_page=-1"] {
            assert_eq!(
                request(bad).unwrap_err().body().to_string(),
                r#"{"error":"per_page does not have a valid value"}"#
            );
        }
        assert_eq!(
            request("page=x").unwrap_err().body().to_string(),
            r#"{"error":"page is invalid"}"#
        );
    }

    fn header<'a>(headers: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn forty_five_items_in_pages_of_twenty() {
        let all: Vec<u64> = (1..=45).collect();
        let query = Params::from_query("type=project_type&per_page=20&private_token=t")
            .unwrap()
            .as_map()
            .clone();
        let url = "http://h/api/v4/runners";
        let expected = [
            (
                1,
                20,
                "2",
                "",
                r#"<http://h/api/v4/runners?page=2&per_page=20&private_token=t&type=project_type>; rel="next""#,
            ),
            (
                2,
                20,
                "3",
                "1",
                r#"rel="prev", <http://h/api/v4/runners?page=3"#,
            ),
            (
                3,
                5,
                "",
                "2",
                r#"<http://h/api/v4/runners?page=2&per_page=20&private_token=t&type=project_type>; rel="prev", <http"#,
            ),
        ];
        for (page, count, next, prev, link_start) in expected {
            let (items, info) = PageRequest { page, per_page: 20 }.cut(all.clone(), true);
            assert_eq!(items.len(), count);
            assert_eq!(items[0], (page - 1) * 20 + 1);
            let headers = info.headers(url, &query);
            assert_eq!(header(&headers, "x-page"), Some(page.to_string().as_str()));
            assert_eq!(header(&headers, "x-next-page"), Some(next));
            assert_eq!(header(&headers, "x-prev-page"), Some(prev));
            assert_eq!(header(&headers, "x-total"), Some("45"));
            assert_eq!(header(&headers, "x-total-pages"), Some("3"));
            let link = header(&headers, "link").unwrap();
            assert!(link.contains(link_start), "{link}");
            assert!(link.ends_with(r#"<http://h/api/v4/runners?page=3&per_page=20&private_token=t&type=project_type>; rel="last""#), "{link}");
        }
    }

    #[test]
    fn out_of_range_and_empty() {
        let (items, info) = PageRequest {
            page: 9,
            per_page: 20,
        }
        .cut((1..=45).collect::<Vec<_>>(), true);
        assert!(items.is_empty());
        let headers = info.headers("http://h/x", &Map::new());
        assert_eq!(
            header(&headers, "x-prev-page"),
            Some(""),
            "Kaminari: no prev past the last page"
        );
        assert_eq!(header(&headers, "x-next-page"), Some(""));
        let (_, empty) = PageRequest::default().cut(Vec::<u64>::new(), true);
        let headers = empty.headers("http://h/x", &Map::new());
        assert_eq!(
            (
                header(&headers, "x-total"),
                header(&headers, "x-total-pages")
            ),
            (Some("0"), Some("1"))
        );
        assert_eq!(
            header(&headers, "link"),
            Some(
                r#"<http://h/x?page=1&per_page=20>; rel="first", <http://h/x?page=1&per_page=20>; rel="last""#
            )
        );
    }

    #[test]
    fn past_the_count_limit_the_total_is_left_out() {
        let request = PageRequest {
            page: 2,
            per_page: 100,
        };
        let found: Vec<u64> = (0..request.scan_limit()).collect();
        assert_eq!(found.len(), 10_001);
        let (items, info) = request.cut(found, false);
        assert_eq!((items.len(), info.total, info.has_next), (100, None, true));
        let headers = info.headers("http://h/x", &Map::new());
        assert!(
            header(&headers, "x-total").is_none() && header(&headers, "x-total-pages").is_none()
        );
        assert!(!header(&headers, "link").unwrap().contains("rel=\"last\""));
        assert_eq!(
            PageRequest {
                page: 200,
                per_page: 100
            }
            .scan_limit(),
            20_001,
            "a deep page reads up to its end"
        );
    }

    #[test]
    fn link_urls_keep_arrays_and_encode_values() {
        let query = Params::from_query("tag_list[]=a b&tag_list[]=c&scope=active")
            .unwrap()
            .as_map()
            .clone();
        assert_eq!(
            page_url("http://h/r", &query, 2, 5),
            "http://h/r?page=2&per_page=5&scope=active&tag_list%5B%5D=a+b&tag_list%5B%5D=c"
        );
    }
}
