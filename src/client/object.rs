//! Objects stay `serde_json::Value` (any kind, including CRDs, without generated types); these
//! accessors read the metadata every controller needs. Missing or mistyped fields read as absent.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

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

/// One listed object, kept as its compact JSON text until someone needs it decoded: a page of
/// 500 objects decoded at once is several times its JSON in memory, and a cache keeps only a
/// fraction of each object anyway, so the watcher hands items on one at a time
/// ([`RawItem::to_value`]). `Debug` shows the size only (a Secret's data is in the text).
#[derive(Clone)]
pub struct RawItem(Box<RawValue>);

impl RawItem {
    /// The item of a value (tests, and watch-list events, which arrive decoded). Serialising a
    /// `Value` cannot fail (its map keys are strings); the default is only there to stay total.
    pub fn from_value(v: &Value) -> RawItem {
        RawItem(serde_json::value::to_raw_value(v).unwrap_or_default())
    }

    pub fn text(&self) -> &str {
        self.0.get()
    }

    /// The decoded object; every item was checked to be a JSON object when the page was read.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.0.get()).unwrap_or(Value::Null)
    }
}

impl PartialEq for RawItem {
    fn eq(&self, other: &Self) -> bool {
        self.text() == other.text()
    }
}

impl std::fmt::Debug for RawItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawItem(<{} bytes>)", self.text().len())
    }
}

/// One page of a list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObjectList {
    /// The list's own kind (`SecretList`), empty if the server sent none.
    pub kind: String,
    pub resource_version: String,
    pub continue_token: Option<String>,
    pub remaining_item_count: Option<i64>,
    pub items: Vec<RawItem>,
}

/// A list body as read from the wire: the envelope decoded, the items kept as text.
#[derive(Deserialize)]
struct WirePage<'a> {
    kind: Option<Value>,
    #[serde(rename = "apiVersion")]
    api_version: Option<Value>,
    metadata: Option<Value>,
    #[serde(borrow)]
    items: Option<&'a RawValue>,
}

/// What an item must have, read without decoding the rest of it.
#[derive(Deserialize)]
struct ItemHead {
    kind: Option<Value>,
    #[serde(rename = "apiVersion")]
    api_version: Option<Value>,
    metadata: Option<ItemMeta>,
}

#[derive(Deserialize)]
struct ItemMeta {
    name: Option<Value>,
}

impl ObjectList {
    /// Reads a list body. Items of a list carry no kind/apiVersion on the wire; they are filled
    /// in from the list's kind (`SecretList` -> `Secret`) so each item stands alone. A page is
    /// taken whole or not at all: accepting the readable rest of a broken page would make the
    /// objects left out look deleted to whoever caches the listing. Errors never quote the body.
    /// `expect`: the item kind the caller asked for, checked when the list does not name one.
    pub fn from_body(body: &[u8], expect: Option<&str>) -> Result<ObjectList, String> {
        let page: WirePage<'_> = serde_json::from_slice(body).map_err(|e| {
            // A syntax error names a position only; a type error could quote the body.
            if e.is_syntax() || e.is_eof() {
                format!("response of {} bytes is not JSON ({e})", body.len())
            } else {
                format!("response of {} bytes is not a list", body.len())
            }
        })?;
        let text = |v: &Option<Value>| v.as_ref().and_then(Value::as_str).unwrap_or_default().to_string();
        let (kind, api_version) = (text(&page.kind), text(&page.api_version));
        let what = if kind.is_empty() { "list".to_string() } else { kind.clone() };
        let raw: Vec<&RawValue> = match page.items.map(RawValue::get) {
            None | Some("null") => Vec::new(),
            Some(items) => serde_json::from_str(items).map_err(|_| format!("list {what}: items is not an array"))?,
        };
        let item_kind = kind.strip_suffix("List").filter(|k| !k.is_empty() && *k != "PartialObjectMetadata");
        let mut items = Vec::with_capacity(raw.len());
        for (i, it) in raw.into_iter().enumerate() {
            let bad = || format!("{what}: item {i} is not an object with metadata.name");
            let head: ItemHead = serde_json::from_str(it.get()).map_err(|_| bad())?;
            let name = head.metadata.and_then(|m| m.name).and_then(|n| n.as_str().map(str::is_empty));
            if name != Some(false) {
                return Err(bad());
            }
            let own_kind = head.kind.as_ref().map(|k| k.as_str().unwrap_or_default());
            if own_kind.is_some_and(|k| item_kind.or(expect).is_some_and(|want| k != want)) {
                return Err(format!("{what}: item {i} is of another kind"));
            }
            // Put the list's kind and apiVersion in front of the item's own fields (JSON object
            // text starts with `{`), only where the item lacks them.
            let mut missing = Vec::new();
            if let (None, Some(k)) = (&head.kind, item_kind) {
                missing.push(format!("\"kind\":{}", Value::String(k.to_string())));
            }
            if head.api_version.is_none() && !api_version.is_empty() {
                missing.push(format!("\"apiVersion\":{}", Value::String(api_version.clone())));
            }
            let item = if missing.is_empty() {
                it.to_owned()
            } else {
                let rest = it.get().trim_start().strip_prefix('{').ok_or_else(bad)?.trim_start();
                let sep = if rest.starts_with('}') { "" } else { "," };
                RawValue::from_string(format!("{{{}{sep}{rest}", missing.join(","))).map_err(|_| bad())?
            };
            items.push(RawItem(item));
        }
        let meta = page.metadata.unwrap_or(Value::Null);
        Ok(ObjectList {
            kind,
            resource_version: meta.get("resourceVersion").and_then(Value::as_str).unwrap_or_default().to_string(),
            continue_token: meta.get("continue").and_then(Value::as_str).filter(|c| !c.is_empty()).map(String::from),
            remaining_item_count: meta.get("remainingItemCount").and_then(Value::as_i64),
            items,
        })
    }

    /// [`ObjectList::from_body`] of a value (tests).
    pub fn from_value(v: Value) -> Result<ObjectList, String> {
        ObjectList::from_body(v.to_string().as_bytes(), None)
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
        assert_eq!(page.items[0].to_value().kind(), Some("Secret"));
        assert_eq!(page.items[0].to_value().api_version(), Some("v1"));
        assert_eq!(page.items[0].to_value()["metadata"]["name"], "a");
        let l = json!({"kind":"PartialObjectMetadataList","apiVersion":"meta.k8s.io/v1","metadata":{"continue":""},
            "items":[{"kind":"PartialObjectMetadata","metadata":{"name":"a"}}]});
        let page = ObjectList::from_value(l).unwrap();
        assert_eq!(page.continue_token, None);
        assert_eq!(page.items[0].to_value().kind(), Some("PartialObjectMetadata"));
        assert_eq!(page.items[0].to_value().api_version(), Some("meta.k8s.io/v1"));
        assert!(ObjectList::from_value(json!({"items": 3})).is_err());
        assert!(ObjectList::from_body(b"[1, 2]", None).unwrap_err().contains("is not a list"));
        assert!(ObjectList::from_body(b"{\"items\": [", None).unwrap_err().contains("is not JSON"));
        let unnamed = br#"{"apiVersion":"v1","items":[{"kind":"Pod","metadata":{"name":"a"}}]}"#;
        assert!(ObjectList::from_body(unnamed, Some("Secret")).unwrap_err().contains("another kind"));
        assert!(ObjectList::from_body(unnamed, Some("Pod")).is_ok());
        let empty = ObjectList::from_value(json!({"kind": "SecretList", "items": null})).unwrap();
        assert!(empty.items.is_empty() && empty.kind == "SecretList");
        let bare = ObjectList::from_value(json!({"kind": "SecretList", "apiVersion": "v1", "items": [{}]}));
        assert!(bare.unwrap_err().contains("item 0"), "an item without a name is refused");
        let spaced = ObjectList::from_body(
            br#"{"kind":"SecretList","apiVersion":"v1","items":[ {  "metadata":{"name":"a"}} ]}"#,
            None,
        )
        .unwrap();
        assert_eq!(
            spaced.items[0].to_value(),
            json!({"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "a"}})
        );
        assert_eq!(format!("{:?}", spaced.items[0]), format!("RawItem(<{} bytes>)", spaced.items[0].text().len()));
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
