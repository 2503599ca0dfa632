//! Objects stay `serde_json::Value` (any kind, including CRDs, without generated types); these
//! accessors read the metadata every controller needs. Missing or mistyped fields read as absent.

use std::collections::BTreeMap;

use serde_json::Value;

pub trait ObjectExt {
    fn meta_str(&self, field: &str) -> Option<&str>;
    fn name(&self) -> Option<&str>;
    fn namespace(&self) -> Option<&str>;
    fn uid(&self) -> Option<&str>;
    fn resource_version(&self) -> Option<&str>;
    fn generation(&self) -> Option<i64>;
    fn labels(&self) -> BTreeMap<String, String>;
    fn annotations(&self) -> BTreeMap<String, String>;
    fn label(&self, key: &str) -> Option<&str>;
    fn annotation(&self, key: &str) -> Option<&str>;
    fn finalizers(&self) -> Vec<&str>;
    fn owner_references(&self) -> &[Value];
    fn deletion_timestamp(&self) -> Option<&str>;
    fn kind(&self) -> Option<&str>;
    fn api_version(&self) -> Option<&str>;
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect())
        .unwrap_or_default()
}

impl ObjectExt for Value {
    fn meta_str(&self, field: &str) -> Option<&str> {
        self.get("metadata")?.get(field)?.as_str()
    }

    fn name(&self) -> Option<&str> {
        self.meta_str("name")
    }

    fn namespace(&self) -> Option<&str> {
        self.meta_str("namespace")
    }

    fn uid(&self) -> Option<&str> {
        self.meta_str("uid")
    }

    fn resource_version(&self) -> Option<&str> {
        self.meta_str("resourceVersion")
    }

    fn generation(&self) -> Option<i64> {
        self.get("metadata")?.get("generation")?.as_i64()
    }

    fn labels(&self) -> BTreeMap<String, String> {
        string_map(self.get("metadata").and_then(|m| m.get("labels")))
    }

    fn annotations(&self) -> BTreeMap<String, String> {
        string_map(self.get("metadata").and_then(|m| m.get("annotations")))
    }

    fn label(&self, key: &str) -> Option<&str> {
        self.get("metadata")?.get("labels")?.get(key)?.as_str()
    }

    fn annotation(&self, key: &str) -> Option<&str> {
        self.get("metadata")?.get("annotations")?.get(key)?.as_str()
    }

    fn finalizers(&self) -> Vec<&str> {
        self.get("metadata")
            .and_then(|m| m.get("finalizers"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    fn owner_references(&self) -> &[Value] {
        self.get("metadata")
            .and_then(|m| m.get("ownerReferences"))
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    fn deletion_timestamp(&self) -> Option<&str> {
        self.meta_str("deletionTimestamp")
    }

    fn kind(&self) -> Option<&str> {
        self.get("kind")?.as_str()
    }

    fn api_version(&self) -> Option<&str> {
        self.get("apiVersion")?.as_str()
    }
}

/// One page of a list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObjectList {
    pub resource_version: String,
    pub continue_token: Option<String>,
    pub remaining_item_count: Option<i64>,
    pub items: Vec<Value>,
}

impl ObjectList {
    /// Splits a decoded list body. Items of a list carry no kind/apiVersion on the wire; they are
    /// filled in from the list's kind (`SecretList` -> `Secret`) so each item stands alone.
    pub fn from_value(mut v: Value) -> Result<ObjectList, String> {
        let kind = v.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
        let api_version = v.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_string();
        let meta = v.get("metadata").cloned().unwrap_or(Value::Null);
        let items = match v.get_mut("items").map(Value::take) {
            Some(Value::Array(items)) => items,
            Some(Value::Null) | None => Vec::new(),
            Some(_) => return Err(format!("list {kind}: items is not an array")),
        };
        let item_kind = kind.strip_suffix("List").filter(|k| !k.is_empty() && *k != "PartialObjectMetadata");
        let items: Vec<Value> = items
            .into_iter()
            .map(|mut it| {
                if let Some(obj) = it.as_object_mut() {
                    if let Some(k) = item_kind.filter(|_| !obj.contains_key("kind")) {
                        obj.insert("kind".into(), Value::String(k.to_string()));
                    }
                    if !api_version.is_empty() && !obj.contains_key("apiVersion") {
                        obj.insert("apiVersion".into(), Value::String(api_version.clone()));
                    }
                }
                it
            })
            .collect();
        // A page is taken whole or not at all: accepting the readable rest of a broken page would
        // make the objects left out look deleted to whoever caches the listing.
        if let Some(i) = items.iter().position(|it| it.name().is_none_or(str::is_empty)) {
            let what = if kind.is_empty() { "list" } else { kind.as_str() };
            return Err(format!("{what}: item {i} is not an object with metadata.name"));
        }
        if let Some(i) = items.iter().position(|it| it.kind().is_some_and(|k| item_kind.is_some_and(|want| k != want)))
        {
            let what = if kind.is_empty() { "list" } else { kind.as_str() };
            return Err(format!("{what}: item {i} is of another kind"));
        }
        Ok(ObjectList {
            resource_version: meta.get("resourceVersion").and_then(Value::as_str).unwrap_or_default().to_string(),
            continue_token: meta.get("continue").and_then(Value::as_str).filter(|c| !c.is_empty()).map(String::from),
            remaining_item_count: meta.get("remainingItemCount").and_then(Value::as_i64),
            items,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accessors_read_metadata() {
        let o = json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"a","namespace":"ns","uid":"u",
            "resourceVersion":"7","generation":3,"labels":{"x":"1"},"annotations":{"y":"2","n":5},
            "finalizers":["f1"],"ownerReferences":[{"uid":"o"}],"deletionTimestamp":"2026-01-01T00:00:00Z"}});
        assert_eq!(
            (o.name(), o.namespace(), o.uid(), o.resource_version()),
            (Some("a"), Some("ns"), Some("u"), Some("7"))
        );
        assert_eq!(o.generation(), Some(3));
        assert_eq!(o.label("x"), Some("1"));
        assert_eq!(o.annotations().len(), 1, "non-string values are skipped");
        assert_eq!(o.finalizers(), vec!["f1"]);
        assert_eq!(o.owner_references().len(), 1);
        assert_eq!(o.deletion_timestamp(), Some("2026-01-01T00:00:00Z"));
        assert_eq!((o.kind(), o.api_version()), (Some("Secret"), Some("v1")));
        let empty = json!({"metadata": "oops"});
        assert_eq!(empty.name(), None);
        assert!(empty.labels().is_empty() && empty.finalizers().is_empty() && empty.owner_references().is_empty());
    }

    #[test]
    fn list_pages_fill_item_kinds() {
        let l = json!({"kind":"SecretList","apiVersion":"v1","metadata":{"resourceVersion":"9","continue":"c",
            "remainingItemCount":4},"items":[{"metadata":{"name":"a"}}]});
        let page = ObjectList::from_value(l).unwrap();
        assert_eq!(page.resource_version, "9");
        assert_eq!(page.continue_token.as_deref(), Some("c"));
        assert_eq!(page.remaining_item_count, Some(4));
        assert_eq!(page.items[0].kind(), Some("Secret"));
        assert_eq!(page.items[0].api_version(), Some("v1"));
        let l = json!({"kind":"PartialObjectMetadataList","apiVersion":"meta.k8s.io/v1","metadata":{"continue":""},
            "items":[{"kind":"PartialObjectMetadata","metadata":{"name":"a"}}]});
        let page = ObjectList::from_value(l).unwrap();
        assert_eq!(page.continue_token, None);
        assert_eq!(page.items[0].kind(), Some("PartialObjectMetadata"));
        assert!(ObjectList::from_value(json!({"items": 3})).is_err());
    }

    #[test]
    fn a_page_with_an_unreadable_or_foreign_item_is_refused_whole() {
        let page = |items: Value| {
            ObjectList::from_value(json!({"kind": "SecretList", "apiVersion": "v1",
            "metadata": {"resourceVersion": "5"}, "items": items}))
        };
        assert!(page(json!([{"metadata": {"name": "a"}}])).is_ok());
        for bad in [
            json!([1]),
            json!(["x"]),
            json!([{"metadata": "m"}]),
            json!([{"metadata": {"name": 5}}]),
            json!([{"metadata": {}}]),
            json!([{"metadata": {"name": "a"}}, null]),
            json!([{"kind": "Pod", "metadata": {"name": "a"}}]),
        ] {
            let e = page(bad.clone()).unwrap_err();
            assert!(e.contains("item"), "{bad} -> {e}");
        }
    }
}
