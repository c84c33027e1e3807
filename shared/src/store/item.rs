//! Reading and writing DynamoDB attribute maps. A stored item that lacks an attribute we always
//! write is corruption: it becomes an internal error (logged, 500), never a panic.

use crate::error::ApiError;
use crate::time::Timestamp;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::{BTreeSet, HashMap};

pub type Item = HashMap<String, AttributeValue>;

/// Builds an item attribute by attribute; `None` values are left out.
#[derive(Debug, Default)]
pub struct ItemBuilder(Item);

impl ItemBuilder {
    pub fn keyed((pk, sk): (String, String)) -> Self {
        let mut item = Item::new();
        item.insert(super::keys::PK.to_owned(), AttributeValue::S(pk));
        item.insert(super::keys::SK.to_owned(), AttributeValue::S(sk));
        Self(item)
    }

    pub fn s(mut self, name: &str, value: impl Into<String>) -> Self {
        self.0
            .insert(name.to_owned(), AttributeValue::S(value.into()));
        self
    }

    /// A string, or DynamoDB's `NULL` for `None`: an attribute whose absence means something
    /// else (not known) than its value being none.
    pub fn s_or_null(mut self, name: &str, value: Option<impl Into<String>>) -> Self {
        let value = match value {
            Some(v) => AttributeValue::S(v.into()),
            None => AttributeValue::Null(true),
        };
        self.0.insert(name.to_owned(), value);
        self
    }

    pub fn opt_s(self, name: &str, value: Option<impl Into<String>>) -> Self {
        match value {
            Some(v) => self.s(name, v),
            None => self,
        }
    }

    pub fn n(mut self, name: &str, value: i64) -> Self {
        self.0
            .insert(name.to_owned(), AttributeValue::N(value.to_string()));
        self
    }

    pub fn opt_n(self, name: &str, value: Option<i64>) -> Self {
        match value {
            Some(v) => self.n(name, v),
            None => self,
        }
    }

    pub fn time(self, name: &str, value: Timestamp) -> Self {
        self.n(name, value.millis())
    }

    pub fn opt_time(self, name: &str, value: Option<Timestamp>) -> Self {
        self.opt_n(name, value.map(Timestamp::millis))
    }

    pub fn bool(mut self, name: &str, value: bool) -> Self {
        self.0.insert(name.to_owned(), AttributeValue::Bool(value));
        self
    }

    pub fn strings(mut self, name: &str, values: &[String]) -> Self {
        let list = values.iter().cloned().map(AttributeValue::S).collect();
        self.0.insert(name.to_owned(), AttributeValue::L(list));
        self
    }

    /// A list of numbers (order kept).
    pub fn numbers(mut self, name: &str, values: &[i64]) -> Self {
        let list = values
            .iter()
            .map(|v| AttributeValue::N(v.to_string()))
            .collect();
        self.0.insert(name.to_owned(), AttributeValue::L(list));
        self
    }

    /// A nested map.
    pub fn map(mut self, name: &str, value: Item) -> Self {
        self.0.insert(name.to_owned(), AttributeValue::M(value));
        self
    }

    pub fn opt_map(self, name: &str, value: Option<Item>) -> Self {
        match value {
            Some(v) => self.map(name, v),
            None => self,
        }
    }

    pub fn build(self) -> Item {
        self.0
    }
}

/// Typed reads from a stored item.
pub struct ItemReader<'a> {
    item: &'a Item,
    what: &'static str,
}

impl<'a> ItemReader<'a> {
    pub fn new(item: &'a Item, what: &'static str) -> Self {
        Self { item, what }
    }

    fn corrupt(&self, name: &str) -> ApiError {
        let pk = self
            .item
            .get(super::keys::PK)
            .and_then(|v| v.as_s().ok())
            .map_or("?", String::as_str);
        ApiError::internal(format!(
            "corrupt {} item {pk}: attribute {name} missing or mistyped",
            self.what
        ))
    }

    pub fn opt_s(&self, name: &str) -> Option<String> {
        self.item.get(name).and_then(|v| v.as_s().ok()).cloned()
    }

    pub fn s(&self, name: &str) -> Result<String, ApiError> {
        self.opt_s(name).ok_or_else(|| self.corrupt(name))
    }

    pub fn opt_n(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(n)) => n.parse().map(Some).map_err(|_| self.corrupt(name)),
            Some(_) => Err(self.corrupt(name)),
        }
    }

    pub fn n(&self, name: &str) -> Result<i64, ApiError> {
        self.opt_n(name)?.ok_or_else(|| self.corrupt(name))
    }

    pub fn opt_time(&self, name: &str) -> Result<Option<Timestamp>, ApiError> {
        Ok(self.opt_n(name)?.map(Timestamp::from_millis))
    }

    pub fn time(&self, name: &str) -> Result<Timestamp, ApiError> {
        Ok(Timestamp::from_millis(self.n(name)?))
    }

    pub fn bool(&self, name: &str) -> Result<bool, ApiError> {
        self.item
            .get(name)
            .and_then(|v| v.as_bool().ok())
            .copied()
            .ok_or_else(|| self.corrupt(name))
    }

    pub fn bool_or(&self, name: &str, default: bool) -> bool {
        self.item
            .get(name)
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(default)
    }

    pub fn strings(&self, name: &str) -> Result<Vec<String>, ApiError> {
        match self.item.get(name) {
            None => Ok(Vec::new()),
            Some(AttributeValue::L(list)) => list
                .iter()
                .map(|v| v.as_s().cloned().map_err(|_| self.corrupt(name)))
                .collect(),
            Some(_) => Err(self.corrupt(name)),
        }
    }

    /// Whether the item has a list attribute `name`.
    pub fn opt_list(&self, name: &str) -> bool {
        self.item.get(name).is_some_and(AttributeValue::is_l)
    }

    /// A nested map, if present.
    pub fn map(&self, name: &str) -> Result<Option<&'a Item>, ApiError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::M(map)) => Ok(Some(map)),
            Some(_) => Err(self.corrupt(name)),
        }
    }

    /// A list of numbers, order kept.
    pub fn numbers(&self, name: &str) -> Result<Vec<i64>, ApiError> {
        let parse = |n: &String| n.parse::<i64>().map_err(|_| self.corrupt(name));
        match self.item.get(name) {
            None => Ok(Vec::new()),
            Some(AttributeValue::L(list)) => list
                .iter()
                .map(|v| v.as_n().map_err(|_| self.corrupt(name)).and_then(parse))
                .collect(),
            Some(_) => Err(self.corrupt(name)),
        }
    }
}

pub fn key_of((pk, sk): (String, String)) -> Item {
    ItemBuilder::keyed((pk, sk)).build()
}

/// An item's key, if it has one.
pub fn key_from(item: &Item) -> Option<(String, String)> {
    let reader = ItemReader::new(item, "item");
    Some((
        reader.s(super::keys::PK).ok()?,
        reader.s(super::keys::SK).ok()?,
    ))
}

/// A number set of runner ids (not empty).
pub fn number_set(ids: &BTreeSet<i64>) -> AttributeValue {
    AttributeValue::Ns(ids.iter().map(i64::to_string).collect())
}

/// The ids of a number set.
pub fn ids_of_set(value: &AttributeValue) -> Result<BTreeSet<i64>, ApiError> {
    let unreadable = || ApiError::internal("unreadable member set");
    value
        .as_ns()
        .map_err(|_| unreadable())?
        .iter()
        .map(|id| id.parse().map_err(|_| unreadable()))
        .collect()
}
