//! The table definition, read from `template.yaml` itself: one definition for the deployed table
//! and for every local one, so the two cannot drift.

use crate::error::ApiError;
use crate::store::Store;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use yaml_rust2::{Yaml, YamlLoader};

pub const TEMPLATE: &str = include_str!("../../../template.yaml");
pub const TABLE_RESOURCE: &str = "RunnersTable";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexDefinition {
    pub name: String,
    pub keys: Vec<(String, String)>,
    pub projection: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDefinition {
    /// (attribute name, type: S/N/B)
    pub attributes: Vec<(String, String)>,
    /// (attribute name, HASH/RANGE)
    pub keys: Vec<(String, String)>,
    pub indexes: Vec<IndexDefinition>,
}

fn text(node: &Yaml, what: &str) -> Result<String, String> {
    node.as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("template.yaml: {what} is not a string"))
}

fn pairs(
    node: &Yaml,
    first: &str,
    second: &str,
    what: &str,
) -> Result<Vec<(String, String)>, String> {
    node.as_vec()
        .ok_or_else(|| format!("template.yaml: {what} is not a list"))?
        .iter()
        .map(|entry| Ok((text(&entry[first], what)?, text(&entry[second], what)?)))
        .collect()
}

impl TableDefinition {
    pub fn from_template(template: &str) -> Result<Self, String> {
        let docs =
            YamlLoader::load_from_str(template).map_err(|e| format!("template.yaml: {e}"))?;
        let properties = &docs.first().ok_or("template.yaml is empty")?["Resources"]
            [TABLE_RESOURCE]["Properties"];
        if properties.is_badvalue() {
            return Err(format!(
                "template.yaml has no {TABLE_RESOURCE} resource with Properties"
            ));
        }
        let indexes = match properties["GlobalSecondaryIndexes"].as_vec() {
            None => Vec::new(),
            Some(list) => list
                .iter()
                .map(|index| {
                    Ok(IndexDefinition {
                        name: text(&index["IndexName"], "IndexName")?,
                        keys: pairs(
                            &index["KeySchema"],
                            "AttributeName",
                            "KeyType",
                            "index KeySchema",
                        )?,
                        projection: text(&index["Projection"]["ProjectionType"], "ProjectionType")?,
                    })
                })
                .collect::<Result<_, String>>()?,
        };
        Ok(Self {
            attributes: pairs(
                &properties["AttributeDefinitions"],
                "AttributeName",
                "AttributeType",
                "AttributeDefinitions",
            )?,
            keys: pairs(
                &properties["KeySchema"],
                "AttributeName",
                "KeyType",
                "KeySchema",
            )?,
            indexes,
        })
    }

    /// The definition `template.yaml` in this build declares.
    pub fn current() -> Result<Self, String> {
        Self::from_template(TEMPLATE)
    }
}

fn key_schema(keys: &[(String, String)]) -> Result<Vec<KeySchemaElement>, ApiError> {
    keys.iter()
        .map(|(name, kind)| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(KeyType::from(kind.as_str()))
                .build()
                .map_err(ApiError::internal)
        })
        .collect()
}

/// Creates the table as the template declares it. `Ok(false)` when it already exists.
pub async fn create_table(store: &Store) -> Result<bool, ApiError> {
    let definition = TableDefinition::current().map_err(ApiError::internal)?;
    let mut request = store
        .client()
        .create_table()
        .table_name(store.table())
        .billing_mode(BillingMode::PayPerRequest);
    for (name, kind) in &definition.attributes {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::from(kind.as_str()))
                .build()
                .map_err(ApiError::internal)?,
        );
    }
    request = request.set_key_schema(Some(key_schema(&definition.keys)?));
    for index in &definition.indexes {
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(&index.name)
                .set_key_schema(Some(key_schema(&index.keys)?))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::from(index.projection.as_str()))
                        .build(),
                )
                .build()
                .map_err(ApiError::internal)?,
        );
    }
    match request.send().await {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            Ok(false)
        }
        Err(e) => Err(crate::store::storage_error(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::keys;

    #[test]
    fn the_template_declares_the_keys_and_indexes_the_store_uses() {
        let definition = TableDefinition::current().unwrap();
        assert_eq!(
            definition.keys,
            [
                (keys::PK.into(), "HASH".into()),
                (keys::SK.into(), "RANGE".into())
            ]
        );
        let index = |name: &str| {
            definition
                .indexes
                .iter()
                .find(|i| i.name == name)
                .cloned()
                .unwrap()
        };
        assert_eq!(
            index(keys::GSI1).keys,
            [
                (keys::GSI1_PK.into(), "HASH".into()),
                (keys::GSI1_SK.into(), "RANGE".into())
            ]
        );
        assert_eq!(
            index(keys::GSI2).keys,
            [
                (keys::GSI2_PK.into(), "HASH".into()),
                (keys::GSI2_SK.into(), "RANGE".into())
            ]
        );
        for (name, _) in definition
            .keys
            .iter()
            .chain(definition.indexes.iter().flat_map(|i| i.keys.iter()))
        {
            assert!(
                definition
                    .attributes
                    .iter()
                    .any(|(a, t)| a == name && t == "S"),
                "{name} declared as a string"
            );
        }
    }

    #[test]
    fn a_template_without_the_table_is_an_error() {
        assert!(TableDefinition::from_template("Resources: {}").is_err());
    }
}
