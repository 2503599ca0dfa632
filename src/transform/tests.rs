use super::*;
use serde_json::{Map, Value, json};
use std::time::{Duration, Instant};

fn data<'a>(ns: &'a str, labels: Option<&'a Map<String, Value>>) -> Data<'a> {
    Data {
        target_namespace: ns,
        source_namespace: "default",
        source_name: "app-config",
        target_name: "app-config",
        labels,
        annotations: None,
    }
}

fn compile_ok(doc: &str) -> RuleSet {
    compile(doc, &Limits::default()).unwrap_or_else(|e| panic!("{doc}\n{e}"))
}

/// Applies `doc` to `obj` for namespace `ns`, non-strict; returns the object and the skips.
fn run(doc: &str, mut obj: Value, ns: &str) -> (Value, Vec<Error>) {
    let skipped = compile_ok(doc).apply(&mut obj, &data(ns, None), false).unwrap();
    (obj, skipped)
}

fn run_strict(doc: &str, mut obj: Value, ns: &str) -> Result<Value, Error> {
    compile_ok(doc).apply(&mut obj, &data(ns, None), true).map(|_| obj)
}

fn configmap(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-config", "namespace": "t",
        "labels": {"app": "myapp"}}, "data": data})
}

fn secret(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "app-credentials", "namespace": "t"}, "data": data})
}

const SEED_CONFIGMAP: &str = r#"
rules:
  # Set log level to error in production
  - path: data.LOG_LEVEL
    value: "error"
  # Generate namespace-specific API URLs
  - path: data.API_URL
    template: "https://{{.TargetNamespace}}.api.example.com"
  # Add environment labels
  - path: metadata.labels
    merge:
      environment: "production"
  # Remove debug configurations
  - path: data.DEBUG_MODE
    delete: true
"#;

#[test]
fn seed_readme_configmap_example() {
    let (obj, skipped) = run(
        SEED_CONFIGMAP,
        configmap(json!({"LOG_LEVEL": "debug", "API_URL": "https://localhost:8080", "DEBUG_MODE": "true"})),
        "prod-app",
    );
    assert!(skipped.is_empty());
    assert_eq!(obj["data"], json!({"LOG_LEVEL": "error", "API_URL": "https://prod-app.api.example.com"}));
    assert_eq!(obj["metadata"]["labels"], json!({"app": "myapp", "environment": "production"}));
}

#[test]
fn behavior_i8_examples() {
    let (o, _) = run("rules: [{path: data.LOG_LEVEL, value: error}]", configmap(json!({"LOG_LEVEL": "debug"})), "x");
    assert_eq!(o["data"]["LOG_LEVEL"], "error");
    let (o, _) = run(
        "rules:\n- path: data.DB_NAME\n  template: \"app_{{replace .TargetNamespace \\\"-\\\" \\\"_\\\"}}\"\n- path: data.CACHE\n  template: \"{{upper .TargetNamespace}}:cache\"\n",
        configmap(json!({})),
        "kubemirror-e2e-app-1",
    );
    assert_eq!(o["data"], json!({"DB_NAME": "app_kubemirror_e2e_app_1", "CACHE": "KUBEMIRROR-E2E-APP-1:cache"}));
    let (o, _) = run(
        "rules: [{path: metadata.labels, merge: {environment: production, tier: frontend}}]",
        configmap(json!({})),
        "x",
    );
    assert_eq!(o["metadata"]["labels"], json!({"app": "myapp", "environment": "production", "tier": "frontend"}));
    let (o, _) = run("rules: [{path: data.ENVIRONMENT, value: production}]", secret(json!({})), "x");
    assert_eq!(o["data"]["ENVIRONMENT"], "cHJvZHVjdGlvbg==");
}

#[test]
fn seed_readme_secret_example() {
    // stringData as the API server stores it: base64 in data.
    let src = secret(json!({"APP_KEY": "YXBwLWtleS0xMjM0NQ==", "ADMIN_PASSWORD": "c3VwZXItc2VjcmV0",
        "ROOT_TOKEN": "cm9vdC10b2tlbi14eXo=", "DB_HOST": "bG9jYWxob3N0"}));
    let doc = r#"
rules:
  - path: data.ADMIN_PASSWORD
    delete: true
  - path: data.ROOT_TOKEN
    delete: true
  - path: data.DB_HOST
    template: "{{.TargetNamespace}}.postgres.svc.cluster.local"
"#;
    let (o, _) = run(doc, src, "app-a");
    assert_eq!(
        o["data"],
        json!({"APP_KEY": "YXBwLWtleS0xMjM0NQ==", "DB_HOST": crate::util::base64::encode(b"app-a.postgres.svc.cluster.local")})
    );
}

#[test]
fn seed_readme_namespace_patterns() {
    let doc = r#"
rules:
  - path: data.APP_NAME
    value: "my-app"
  - path: data.GRAPHQL_HOST
    value: "https://preprod.example.com/v1/graphql"
    namespacePattern: "preprod-*"
  - path: data.GRAPHQL_HOST
    value: "https://api.example.com/v1/graphql"
    namespacePattern: "prod-*"
  - path: data.LOG_LEVEL
    value: "warn"
    namespacePattern: "*-staging"
"#;
    let cases = [
        ("preprod-eu", json!({"APP_NAME": "my-app", "GRAPHQL_HOST": "https://preprod.example.com/v1/graphql"})),
        ("prod-eu", json!({"APP_NAME": "my-app", "GRAPHQL_HOST": "https://api.example.com/v1/graphql"})),
        ("eu-staging", json!({"APP_NAME": "my-app", "LOG_LEVEL": "warn"})),
        ("dev", json!({"APP_NAME": "my-app"})),
    ];
    for (ns, want) in cases {
        assert_eq!(run(doc, configmap(json!({})), ns).0["data"], want, "{ns}");
    }
}

fn deployment() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "t"},
        "spec": {"replicas": 2, "template": {"spec": {
            "containers": [{"name": "app", "image": "registry.example.com/app:v1",
                "env": [{"name": "MODE", "value": "x"}, {"name": "DATABASE_URL", "value": "postgres://localhost:5432"}]}],
            "volumes": [{"name": "cfg", "configMap": {"name": "app-config"}}]}}}})
}

#[test]
fn seed_readme_array_indexing() {
    let doc = r#"
rules:
  - path: spec.template.spec.containers[0].image
    template: "registry.{{.TargetNamespace}}.example.com/app:v1"
  - path: spec.template.spec.containers[0].env[1].value
    template: "postgres://{{.TargetNamespace}}-db.svc:5432"
  - path: spec.template.spec.volumes[0].configMap.name
    template: "{{.TargetNamespace}}-config"
"#;
    let (o, skipped) = run(doc, deployment(), "team-a");
    assert!(skipped.is_empty(), "{skipped:?}");
    let spec = &o["spec"]["template"]["spec"];
    assert_eq!(spec["containers"][0]["image"], "registry.team-a.example.com/app:v1");
    assert_eq!(spec["containers"][0]["env"][1]["value"], "postgres://team-a-db.svc:5432");
    assert_eq!(spec["containers"][0]["env"][0]["value"], "x");
    assert_eq!(spec["volumes"][0]["configMap"]["name"], "team-a-config");
}

#[test]
fn set_semantics() {
    // Missing maps are created; an index after a missing key creates an empty list, then fails.
    let (o, s) = run("rules: [{path: spec.a.b, value: v}]", json!({"spec": {}}), "x");
    assert!(s.is_empty());
    assert_eq!(o["spec"], json!({"a": {"b": "v"}}));
    let (o, s) = run("rules: [{path: 'spec.list[0].x', value: v}]", json!({"spec": {}}), "x");
    assert_eq!(o["spec"], json!({"list": []}), "the empty list stays behind, as in Go");
    assert_eq!(s[0].detail, "array index 0 out of bounds (length 0)");
    assert_eq!(s[0].kind, ErrorKind::Path);
    let cases = [
        ("rules: [{path: data.x.y, value: v}]", json!({"data": {"x": "str"}}), "cannot set key y on non-map"),
        ("rules: [{path: data.x.y.z, value: v}]", json!({"data": {"x": "s"}}), "path segment y requires a map"),
        ("rules: [{path: data.x.y, value: v}]", json!({"data": {"x": null}}), "cannot set key y on non-map"),
        ("rules: [{path: 'data[0]', value: v}]", json!({"data": {}}), "path segment [0] requires an array"),
        ("rules: [{path: 'l[2]', value: v}]", json!({"l": [1]}), "array index 2 out of bounds (length 1)"),
        ("rules: [{path: 'l[-1]', value: v}]", json!({"l": [1]}), "array index -1 out of bounds (length 1)"),
    ];
    for (doc, obj, want) in cases {
        let e = run_strict(doc, obj, "x").unwrap_err();
        assert_eq!(e.detail, want, "{doc}");
        assert!(e.to_string().starts_with("failed to apply rule 1 ("), "{e}");
    }
    // value keeps the literal text of any scalar.
    let (o, _) = run(
        "rules: [{path: data.a, value: 3}, {path: data.b, value: 1.50}, {path: data.c, value: true}, {path: data.d, value: ''}]",
        configmap(json!({})),
        "x",
    );
    assert_eq!(o["data"], json!({"a": "3", "b": "1.50", "c": "true", "d": ""}));
    // Replacing a list element.
    let (o, _) = run("rules: [{path: 'l[1]', value: z}]", json!({"l": ["a", "b"]}), "x");
    assert_eq!(o["l"], json!(["a", "z"]));
    // A quoted key with dots and slashes.
    let (o, _) =
        run(r#"rules: [{path: 'metadata.labels["app.kubernetes.io/name"]', value: shop}]"#, configmap(json!({})), "x");
    assert_eq!(o["metadata"]["labels"]["app.kubernetes.io/name"], "shop");
}

#[test]
fn typed_values() {
    let d = deployment();
    // The existing field is a number: the text is written as a number (Go wrote "3").
    let (o, _) = run("rules: [{path: spec.replicas, value: 3}]", d.clone(), "x");
    assert_eq!(o["spec"]["replicas"], json!(3));
    let (o, _) = run("rules: [{path: spec.replicas, template: '{{ len .TargetNamespace }}'}]", d.clone(), "abcd");
    assert_eq!(o["spec"]["replicas"], json!(4));
    // A number field given text that is not a number keeps Go's string.
    let (o, _) = run("rules: [{path: spec.replicas, value: many}]", d.clone(), "x");
    assert_eq!(o["spec"]["replicas"], json!("many"));
    // Booleans.
    let (o, _) = run("rules: [{path: spec.paused, value: 'true'}]", json!({"spec": {"paused": false}}), "x");
    assert_eq!(o["spec"]["paused"], json!(true));
    // String fields stay strings (ConfigMap data "3" stays "3").
    let (o, _) = run("rules: [{path: data.n, value: 5}]", configmap(json!({"n": "3"})), "x");
    assert_eq!(o["data"]["n"], json!("5"));
    // Explicit types, also on missing fields.
    let cases = [
        ("int", "'42'", json!(42)),
        ("number", "'1.5'", json!(1.5)),
        ("number", "'7'", json!(7)),
        ("bool", "'false'", json!(false)),
        ("string", "5", json!("5")),
        ("json", "'{\"a\": [1, true]}'", json!({"a": [1, true]})),
    ];
    for (ty, v, want) in cases {
        let (o, s) = run(&format!("rules: [{{path: spec.f, value: {v}, type: {ty}}}]"), json!({"spec": {}}), "x");
        assert!(s.is_empty(), "{ty}: {s:?}");
        assert_eq!(o["spec"]["f"], want, "{ty}");
    }
    let e = run_strict("rules: [{path: spec.f, value: abc, type: int}]", json!({"spec": {}}), "x").unwrap_err();
    assert_eq!((e.kind, e.detail.as_str()), (ErrorKind::Type, "the value is not an integer (type: int)"));
    let e = run_strict("rules: [{path: data.k, value: '1', type: int}]", secret(json!({})), "x").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Type);
}

#[test]
fn secret_data_is_base64() {
    let (o, _) = run(
        "rules: [{path: data.A, value: production}, {path: data.B, template: '{{ .TargetNamespace }}'}]",
        secret(json!({})),
        "ns1",
    );
    assert_eq!(o["data"], json!({"A": "cHJvZHVjdGlvbg==", "B": "bnMx"}));
    // Not base64: other kinds, other fields, merge (verbatim, as in Go).
    let (o, _) = run("rules: [{path: data.A, value: production}]", configmap(json!({})), "x");
    assert_eq!(o["data"]["A"], "production");
    let (o, _) = run("rules: [{path: metadata.labels.env, value: production}]", secret(json!({})), "x");
    assert_eq!(o["metadata"]["labels"]["env"], "production");
    let (o, _) = run("rules: [{path: data, merge: {B: YmFy}}]", secret(json!({"A": "Zm9v"})), "x");
    assert_eq!(o["data"], json!({"A": "Zm9v", "B": "YmFy"}));
    let mut crd = secret(json!({}));
    crd["apiVersion"] = json!("example.com/v1");
    let (o, _) = run("rules: [{path: data.A, value: production}]", crd, "x");
    assert_eq!(o["data"]["A"], "production");
}

#[test]
fn merge_semantics() {
    // Types are kept (Go panicked on integers: W-17).
    let doc = "rules: [{path: spec.extra, merge: {replicas: 3, enabled: true, ratio: 0.5, tags: [a, b], nested: {k: v}, none: null}}]";
    let (o, s) = run(doc, json!({"spec": {"extra": {"keep": 1, "replicas": 1}}}), "x");
    assert!(s.is_empty());
    assert_eq!(
        o["spec"]["extra"],
        json!({"keep": 1, "replicas": 3, "enabled": true, "ratio": 0.5, "tags": ["a", "b"], "nested": {"k": "v"}, "none": null})
    );
    // Shallow: a nested map is replaced, not merged.
    let (o, _) = run("rules: [{path: spec, merge: {m: {b: 2}}}]", json!({"spec": {"m": {"a": 1}}}), "x");
    assert_eq!(o["spec"]["m"], json!({"b": 2}));
    // `merge: {}` on a missing path creates an empty map (and its parents).
    let (o, _) = run("rules: [{path: a.b.c, merge: {}}]", json!({}), "x");
    assert_eq!(o, json!({"a": {"b": {"c": {}}}}));
    // Into a list element (Go could not).
    let (o, _) = run("rules: [{path: 'l[0]', merge: {x: 1}}]", json!({"l": [{"y": 2}]}), "x");
    assert_eq!(o["l"], json!([{"y": 2, "x": 1}]));
    for (obj, want) in [
        (json!({"a": "str"}), "value cannot be merged because a is not a map"),
        (json!({"a": null}), "value cannot be merged because a is not a map"),
        (json!({"a": {"b": 5}}), "value cannot be merged because a.b is not a map"),
    ] {
        let doc = if want.contains("a.b") {
            "rules: [{path: a.b, merge: {k: v}}]"
        } else {
            "rules: [{path: a, merge: {k: v}}]"
        };
        assert_eq!(run_strict(doc, obj, "x").unwrap_err().detail, want);
    }
    let e = run_strict("rules: [{path: a.b.c, merge: {k: v}}]", json!({"a": {"b": 5}}), "x").unwrap_err();
    assert_eq!(e.detail, "value cannot be set because a.b is not a map");
    let e = run_strict("rules: [{path: 'a[0]', merge: {k: v}}]", json!({"a": {}}), "x").unwrap_err();
    assert_eq!(e.detail, "path segment [0] requires an array");
}

#[test]
fn delete_semantics() {
    let obj = json!({"data": {"a": "1", "b": "2"}, "l": [{"k": 1}, {"k": 2}], "s": "x"});
    let cases = [
        ("data.a", json!({"data": {"b": "2"}, "l": [{"k": 1}, {"k": 2}], "s": "x"})),
        ("data.missing", obj.clone()),
        ("missing.deep.key", obj.clone()),
        ("s.x", obj.clone()),
        ("'l[0]'", json!({"data": {"a": "1", "b": "2"}, "l": [{"k": 2}], "s": "x"})),
        ("'l[1].k'", json!({"data": {"a": "1", "b": "2"}, "l": [{"k": 1}, {}], "s": "x"})),
        ("'l[9]'", obj.clone()),
        ("'l[-1]'", obj.clone()),
        ("data", json!({"l": [{"k": 1}, {"k": 2}], "s": "x"})),
    ];
    for (path, want) in cases {
        let (o, s) = run(&format!("rules: [{{path: {path}, delete: true}}]"), obj.clone(), "x");
        assert!(s.is_empty(), "delete never errors");
        assert_eq!(o, want, "{path}");
    }
    // delete: false is not an action.
    let e = compile("rules: [{path: a, delete: false}]", &Limits::default()).unwrap_err();
    assert!(e.to_string().contains("must specify one of"), "{e}");
}

#[test]
fn rules_run_in_order_and_later_writes_win() {
    let doc = "rules: [{path: data.a, value: one}, {path: data.a, template: '{{ .TargetNamespace }}'}, {path: data.b, value: x}, {path: data.b, delete: true}]";
    let (o, _) = run(doc, configmap(json!({})), "ns");
    assert_eq!(o["data"], json!({"a": "ns"}));
}

#[test]
fn strict_and_non_strict() {
    let doc = "rules: [{path: data.a, value: one}, {path: 'data.list[3]', value: x}, {path: data.c, value: three}]";
    let (o, s) = run(doc, configmap(json!({"list": "not a list"})), "x");
    assert_eq!(o["data"]["a"], "one");
    assert_eq!(o["data"]["c"], "three", "the rules after a skipped one still apply");
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].skip_message(), "rule 2 (data.list[3]) skipped: path segment [3] requires an array");
    let e = run_strict(doc, configmap(json!({"list": "not a list"})), "x").unwrap_err();
    assert_eq!(e.to_string(), "failed to apply rule 2 (data.list[3]): path segment [3] requires an array");
    assert_eq!(e.kind.reason(), "path");
    // Template execution errors, both modes.
    let doc = "rules: [{path: data.x, template: '{{ upper .Labels.missing }}'}]";
    let (_, s) = run(doc, configmap(json!({})), "x");
    assert_eq!(s[0].kind, ErrorKind::Template);
    let e = run_strict(doc, configmap(json!({})), "x").unwrap_err();
    assert_eq!(e.to_string(), "failed to apply rule 1 (data.x): executing template: invalid value; expected string");
    // A rule whose pattern does not match is skipped silently, even in strict mode.
    let doc = "rules: [{path: 'data.list[3]', value: x, namespacePattern: 'prod-*'}]";
    assert!(run_strict(doc, configmap(json!({"list": "s"})), "dev").is_ok());
}

#[test]
fn template_data_from_labels() {
    let labels: Map<String, Value> = [("app".to_string(), json!("web"))].into_iter().collect();
    let rules = compile_ok("rules: [{path: data.x, template: '{{ .Labels.app }}-{{ .SourceName }}'}]");
    let mut obj = configmap(json!({}));
    rules.apply(&mut obj, &data("t", Some(&labels)), true).unwrap();
    assert_eq!(obj["data"]["x"], "web-app-config");
}

#[test]
fn document_shapes() {
    for doc in ["", "   \n", "rules:", "rules: null", "rules: []", "other: 1", "{}", "---\n", "# only a comment\n"] {
        assert!(compile_ok(doc).is_empty(), "{doc:?}");
    }
    // JSON is YAML.
    let r = compile_ok(r#"{"rules": [{"path": "data.a", "value": "b"}]}"#);
    assert_eq!(r.rules.len(), 1);
    // Unknown root keys are ignored (Go).
    assert_eq!(compile_ok("version: 2\nrules: [{path: a, value: b}]").rules.len(), 1);
    let errors = [
        (
            "- path: a\n  value: b",
            ErrorKind::Yaml,
            "failed to parse transformation rules: the document must be a mapping",
        ),
        ("rules: {path: a}", ErrorKind::Yaml, "\"rules\" must be a list"),
        ("rules: [a]", ErrorKind::Yaml, "rule 1: must be a mapping"),
        ("rules: [{path: a, value: {x: 1}}]", ErrorKind::Yaml, "rule 1: value must be a scalar"),
        ("rules: [{path: a, value: [1]}]", ErrorKind::Yaml, "rule 1: value must be a scalar"),
        ("rules: [{path: a, merge: [1]}]", ErrorKind::Yaml, "rule 1: merge must be a mapping"),
        ("rules: [{path: a, merge: x}]", ErrorKind::Yaml, "rule 1: merge must be a mapping"),
        ("rules: [{path: a, delete: yes}]", ErrorKind::Yaml, "rule 1: delete must be true or false"),
        ("rules: [{path: [a], value: b}]", ErrorKind::Yaml, "rule 1: path must be a string"),
        ("rules: [{path: a, path: b, value: c}]", ErrorKind::Yaml, "field \"path\" given twice"),
        ("rules: [{path: a, value: b}\n", ErrorKind::Yaml, "failed to parse transformation rules: line"),
        ("a: 1\n---\nb: 2\n", ErrorKind::Yaml, "several"),
        (
            "rules: [{value: b}]",
            ErrorKind::InvalidRule,
            "invalid transformation rules: rule 1: rule path cannot be empty",
        ),
        ("rules: [{path: '', value: b}]", ErrorKind::InvalidRule, "rule path cannot be empty"),
        ("rules: [{path: '...', value: b}]", ErrorKind::InvalidRule, "rule path cannot be empty"),
        (
            "rules: [{path: a}]",
            ErrorKind::InvalidRule,
            "invalid transformation rules: rule 1 (a): must specify one of: value, template, merge or delete",
        ),
        (
            "rules: [{path: a, value: b, delete: true}]",
            ErrorKind::InvalidRule,
            "cannot specify multiple actions (value, delete)",
        ),
        (
            "rules: [{path: a, value: b, template: c, merge: {}}]",
            ErrorKind::InvalidRule,
            "cannot specify multiple actions (value, template, merge)",
        ),
        ("rules: [{path: a, template: ''}]", ErrorKind::InvalidRule, "must specify one of"),
        (
            "rules: [{path: a, value: b, namespacepattern: 'prod-*'}]",
            ErrorKind::InvalidRule,
            "unknown field \"namespacepattern\"",
        ),
        ("rules: [{path: a, value: b, type: integer32}]", ErrorKind::InvalidRule, "unknown type \"integer32\""),
        (
            "rules: [{path: a, delete: true, type: int}]",
            ErrorKind::InvalidRule,
            "type applies only to value and template rules",
        ),
        ("rules: [{path: 'a[x]', value: b}]", ErrorKind::InvalidRule, "invalid array index \"[x]\""),
        (
            "rules: [{path: a, template: '{{ regexFind \"x\" .TargetNamespace }}'}]",
            ErrorKind::TemplateParse,
            "invalid transformation rules: rule 1 (a): template: line 1: function \"regexFind\" not defined",
        ),
        (
            "rules: [{path: a, template: '{{ .OptionalField }}'}]",
            ErrorKind::TemplateParse,
            "can't evaluate field OptionalField",
        ),
        (
            "rules: [{path: a, template: '{{ range .Labels }}{{ end }}'}]",
            ErrorKind::TemplateParse,
            "{{range}} is not supported",
        ),
    ];
    for (doc, kind, want) in errors {
        let e = compile(doc, &Limits::default()).unwrap_err();
        assert_eq!(e.kind, kind, "{doc}: {e}");
        assert!(e.to_string().contains(want), "{doc}: got {e}, want {want}");
    }
    // The second rule is invalid: the whole document is.
    let e = compile("rules: [{path: a, value: b}, {path: c}]", &Limits::default()).unwrap_err();
    assert_eq!(e.rule, Some((2, "c".to_string())));
}

#[test]
fn protected_paths() {
    let cases = [
        ("metadata.name", "metadata.name cannot be transformed"),
        ("metadata.namespace", "metadata.namespace cannot be transformed"),
        ("metadata", "metadata cannot be transformed as a whole"),
        ("metadata.ownerReferences", "metadata.ownerReferences cannot be transformed"),
        ("metadata.finalizers[0]", "metadata.finalizers cannot be transformed"),
        ("kind", "kind cannot be transformed"),
        ("apiVersion", "apiVersion cannot be transformed"),
        ("status.x", "status is never mirrored"),
        ("metadata.labels.kubemirror\\.raczylo\\.com/managed-by", ""),
        (
            r#"metadata.labels["kubemirror.raczylo.com/managed-by"]"#,
            "kubemirror.raczylo.com/managed-by belongs to the controller",
        ),
        (r#"metadata.annotations["kubemirror.raczylo.com/source-uid"]"#, "belongs to the controller"),
    ];
    for (path, want) in cases {
        let doc = format!("rules: [{{path: '{path}', value: x}}]");
        match compile(&doc, &Limits::default()) {
            Err(e) => {
                assert_eq!(e.kind, ErrorKind::InvalidRule, "{path}");
                assert!(e.detail.contains(want), "{path}: {e}");
            }
            Ok(_) => assert!(want.is_empty(), "{path} should be refused"),
        }
    }
    let e = compile(
        "rules: [{path: metadata.labels, merge: {kubemirror.raczylo.com/mirror: 'false'}}]",
        &Limits::default(),
    )
    .unwrap_err();
    assert!(e.detail.contains("belongs to the controller"), "{e}");
    for ok in ["metadata.labels.team", "metadata.annotations", "data.name", "spec.metadata.name"] {
        compile_ok(&format!("rules: [{{path: '{ok}', value: x}}]"));
    }
}

#[test]
fn limits_and_their_messages() {
    let limits = Limits::default();
    let rule = "- {path: data.a, value: b}\n";
    let fifty = format!("rules:\n{}", rule.repeat(50));
    assert_eq!(compile(&fifty, &limits).unwrap().rules.len(), 50);
    let e = compile(&format!("rules:\n{}", rule.repeat(51)), &limits).unwrap_err();
    assert_eq!(e.to_string(), "invalid transformation rules: too many rules: 51 (maximum 50)");
    let raised = Limits { max_rules: 60, ..limits };
    assert!(compile(&format!("rules:\n{}", rule.repeat(51)), &raised).is_ok());
    // Exactly 10240 bytes passes, 10241 fails.
    let pad = |n: usize| format!("rules: []\n#{}", "x".repeat(n - 11));
    assert_eq!(pad(10_240).len(), 10_240);
    assert!(compile(&pad(10_240), &limits).is_ok());
    let e = compile(&pad(10_241), &limits).unwrap_err();
    assert_eq!(e.kind, ErrorKind::TooLarge);
    assert_eq!(
        e.to_string(),
        "failed to parse transformation rules: transformation rules exceed maximum size of 10240 bytes (got 10241)"
    );
    let lower = Limits { max_bytes: 100, ..limits };
    assert_eq!(compile(&pad(101), &lower).unwrap_err().kind, ErrorKind::TooLarge);
}

#[test]
fn hostile_documents_are_rejected_fast() {
    let big = Limits { max_bytes: 4 << 20, max_rules: 100_000, ..Limits::default() };
    let started = Instant::now();
    // Deep YAML nesting.
    let deep = "rules: ".to_string() + &"[".repeat(1_000_000);
    // Refused by our depth limit, or by yaml-rust2's scanner's own one (flow collections).
    let deep_error =
        |e: &Error| e.detail.contains("nesting deeper than 32 levels") || e.detail.contains("recursion limit exceeded");
    let e = compile(&deep, &big).unwrap_err();
    assert!(deep_error(&e), "{e}");
    let deep_map = "a: ".to_string() + &"{b: ".repeat(200_000);
    assert!(deep_error(&compile(&deep_map, &big).unwrap_err()));
    let deep_block = "rules:\n".to_string() + &(0..2000).map(|i| format!("{}- \n", " ".repeat(i))).collect::<String>();
    assert!(deep_error(&compile(&deep_block, &big).unwrap_err()));
    // Billion laughs: aliases are refused outright.
    let mut laughs = String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for i in 1..10 {
        laughs.push_str(&format!(
            "{}: &{} [{}]\n",
            (b'a' + i) as char,
            (b'a' + i) as char,
            vec![format!("*{}", (b'a' + i - 1) as char); 9].join(",")
        ));
    }
    laughs.push_str("rules: *j\n");
    let e = compile(&laughs, &big).unwrap_err();
    assert!(e.detail.contains("aliases are not accepted"), "{e}");
    // 10^6 pipes in a template: refused by the template token limit.
    let pipes = format!("rules: [{{path: data.x, template: '{{{{ \"x\"{} }}}}'}}]", " | upper".repeat(1_000_000));
    let e = compile(&pipes, &Limits { max_bytes: 16 << 20, ..big }).unwrap_err();
    assert_eq!(e.kind, ErrorKind::TemplateParse);
    assert!(e.detail.contains("more than 20000 tokens"), "{e}");
    // 10^5 nested parentheses.
    let parens =
        format!("rules: [{{path: data.x, template: '{{{{ {}1{} }}}}'}}]", "(".repeat(100_000), ")".repeat(100_000));
    let e = compile(&parens, &big).unwrap_err();
    assert!(e.detail.contains("more than 20000 tokens"), "{e}");
    let parens =
        format!("rules: [{{path: data.x, template: '{{{{ {}1{} }}}}'}}]", "(".repeat(1_000), ")".repeat(1_000));
    let e = compile(&parens, &big).unwrap_err();
    assert!(e.detail.contains("nesting deeper than 64"), "{e}");
    // Huge repeats: a 4 MiB document of rules is refused by count, one with a huge template
    // output by the cap.
    let many = format!("rules:\n{}", "- {path: data.a, value: b}\n".repeat(150_000));
    assert_eq!(compile(&many, &Limits { max_bytes: 8 << 20, ..big }).unwrap_err().kind, ErrorKind::TooManyRules);
    let repeat = format!("rules: [{{path: data.x, template: '{}'}}]", "{{ printf \"%60000s\" \"\" }}".repeat(3));
    let e = compile(&repeat, &big).unwrap().apply(&mut configmap(json!({})), &data("t", None), true).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Limit);
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
}

#[test]
fn errors_never_echo_values() {
    // A Secret value and a label value never appear in any error text.
    let secret_value = "c3VwZXItc2VjcmV0LXZhbHVl";
    let obj = secret(json!({"password": secret_value, "nested": secret_value}));
    let labels: Map<String, Value> = [("tok".to_string(), json!("label-secret"))].into_iter().collect();
    let docs = [
        "rules: [{path: data.password.x, value: v}]",
        "rules: [{path: 'data.password[0]', value: v}]",
        "rules: [{path: data.password, merge: {a: b}}]",
        "rules: [{path: data.password.x, merge: {a: b}}]",
        "rules: [{path: data.n, template: '{{ upper (len .Labels.tok) }}'}]",
        "rules: [{path: data.n, template: '{{ index .Labels.tok 99 }}'}]",
        "rules: [{path: data.n, template: '{{ eq .Labels.tok 1 }}'}]",
        "rules: [{path: data.n, template: '{{ slice .Labels.tok 5 2 }}'}]",
        "rules: [{path: spec.n, template: '{{ .Labels.tok }}', type: int}]",
        "rules: [{path: spec.n, template: '{{ .Labels.tok }}', type: json}]",
    ];
    for doc in docs {
        let mut o = obj.clone();
        o["spec"] = json!({});
        let e = compile_ok(doc).apply(&mut o, &data("t", Some(&labels)), true).unwrap_err();
        let text = format!("{e} {}", e.skip_message());
        assert!(
            !text.contains(secret_value) && !text.contains("super-secret") && !text.contains("label-secret"),
            "{doc}: {text}"
        );
    }
}
