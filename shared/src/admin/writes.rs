//! Bulk and transactional writes for operator commands (never on a request path).

use crate::store::item::Item;
use crate::store::{IdSequence, Store, keys, storage_error};
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, KeysAndAttributes, Put, PutRequest, TransactWriteItem,
    WriteRequest,
};
use std::collections::HashMap;
use std::time::Duration;

const BATCH_WRITE_LIMIT: usize = 25;
const BATCH_GET_LIMIT: usize = 100;

pub(crate) fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

async fn write_batches(store: &Store, requests: Vec<WriteRequest>) -> Result<(), String> {
    for chunk in requests.chunks(BATCH_WRITE_LIMIT) {
        let mut pending: HashMap<String, Vec<WriteRequest>> =
            HashMap::from([(store.table().to_owned(), chunk.to_vec())]);
        for attempt in 0..10u32 {
            let output = store
                .client()
                .batch_write_item()
                .set_request_items(Some(pending))
                .send()
                .await
                .map_err(|e| storage_error(e).to_string())?;
            pending = output.unprocessed_items.unwrap_or_default();
            if pending.values().all(Vec::is_empty) {
                break;
            }
            if attempt == 9 {
                return Err("DynamoDB kept items unprocessed after 10 attempts".to_owned());
            }
            tokio::time::sleep(Duration::from_millis(50 << attempt.min(5))).await;
        }
    }
    Ok(())
}

pub(crate) async fn put_all(store: &Store, items: Vec<Item>) -> Result<(), String> {
    let requests = items
        .into_iter()
        .map(|item| {
            PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map(|p| WriteRequest::builder().put_request(p).build())
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    write_batches(store, requests).await
}

pub(crate) async fn delete_all(store: &Store, keys: Vec<Item>) -> Result<(), String> {
    let requests = keys
        .into_iter()
        .map(|key| {
            DeleteRequest::builder()
                .set_key(Some(key))
                .build()
                .map(|d| WriteRequest::builder().delete_request(d).build())
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    write_batches(store, requests).await
}

pub(crate) async fn get_all(store: &Store, keys: Vec<Item>) -> Result<Vec<Item>, String> {
    let mut found = Vec::new();
    for chunk in keys.chunks(BATCH_GET_LIMIT) {
        let mut pending = Some(HashMap::from([(
            store.table().to_owned(),
            KeysAndAttributes::builder()
                .set_keys(Some(chunk.to_vec()))
                .consistent_read(true)
                .build()
                .map_err(err)?,
        )]));
        while let Some(request) = pending.take().filter(|p| !p.is_empty()) {
            let output = store
                .client()
                .batch_get_item()
                .set_request_items(Some(request))
                .send()
                .await
                .map_err(|e| storage_error(e).to_string())?;
            found.extend(output.responses.unwrap_or_default().into_values().flatten());
            pending = output.unprocessed_keys;
        }
    }
    Ok(found)
}

/// Moves a sequence's counter up to `at_least` (never down), so ids allocated later do not
/// collide with imported ones.
pub(crate) async fn raise_counter(
    store: &Store,
    sequence: IdSequence,
    at_least: i64,
) -> Result<(), String> {
    let result = store
        .client()
        .update_item()
        .table_name(store.table())
        .set_key(Some(crate::store::item::key_of(keys::counter(
            sequence.name(),
        ))))
        .update_expression("SET #value = :at_least")
        .condition_expression("attribute_not_exists(#value) OR #value < :at_least")
        .expression_attribute_names("#value", "value")
        .expression_attribute_values(":at_least", AttributeValue::N(at_least.to_string()))
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(storage_error(e).to_string()),
    }
}

/// One action of an operator transaction.
pub(crate) enum Write {
    /// Put, failing if the key exists.
    Create(Item),
    /// Put, replacing whatever is there.
    Replace(Item),
}

/// Runs the writes atomically. A failed "create" condition is reported with the index of the
/// write that failed, so the caller can say which name was taken.
pub(crate) async fn transact(store: &Store, writes: Vec<Write>) -> Result<(), TransactError> {
    let mut actions = Vec::with_capacity(writes.len());
    for write in writes {
        let action = match write {
            Write::Create(item) => TransactWriteItem::builder().put(
                Put::builder()
                    .table_name(store.table())
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(pk)")
                    .build()
                    .map_err(|e| TransactError::Other(err(e)))?,
            ),
            Write::Replace(item) => TransactWriteItem::builder().put(
                Put::builder()
                    .table_name(store.table())
                    .set_item(Some(item))
                    .build()
                    .map_err(|e| TransactError::Other(err(e)))?,
            ),
        };
        actions.push(action.build());
    }
    match store
        .client()
        .transact_write_items()
        .set_transact_items(Some(actions))
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => {
            use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError as E;
            if let Some(E::TransactionCanceledException(cancelled)) = e.as_service_error()
                && let Some(index) = cancelled
                    .cancellation_reasons()
                    .iter()
                    .position(|r| r.code() == Some("ConditionalCheckFailed"))
            {
                return Err(TransactError::Taken(index));
            }
            Err(TransactError::Other(storage_error(e).to_string()))
        }
    }
}

#[derive(Debug)]
pub(crate) enum TransactError {
    Taken(usize),
    Other(String),
}
