use super::*;
use serde_json::{Map, Value, json};
use std::time::{Duration, Instant};

fn map(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

fn labels() -> Map<String, Value> {
    map(json!({"app": "web", "app.kubernetes.io/name": "shop", "empty": "", "tier": "frontend"}))
}

fn annotations() -> Map<String, Value> {
    map(json!({"note": "hello", "kubemirror.raczylo.com/sync": "true"}))
}

fn render_with(src: &str, labels: Option<&Map<String, Value>>) -> Result<String, Error> {
    let ann = annotations();
    let data = Data {
        target_namespace: "kubemirror-e2e-app-1",
        source_namespace: "default",
        source_name: "app-config",
        target_name: "app-config",
        labels,
        annotations: labels.map(|_| &ann),
    };
    Template::parse(src)?.execute(&data, Limits::default())
}

fn render(src: &str) -> Result<String, Error> {
    render_with(src, Some(&labels()))
}

fn ok(src: &str) -> String {
    render(src).unwrap_or_else(|e| panic!("{src}: {e}"))
}

fn err(src: &str) -> Error {
    match render(src) {
        Ok(out) => panic!("{src}: expected an error, got {out:?}"),
        Err(e) => e,
    }
}

#[test]
fn behaviour_examples() {
    // BEHAVIOR.md §I.8 and the seed README.
    let cases = [
        ("https://{{.TargetNamespace}}.api.example.com", "https://kubemirror-e2e-app-1.api.example.com"),
        (r#"app_{{replace .TargetNamespace "-" "_"}}"#, "app_kubemirror_e2e_app_1"),
        ("{{upper .TargetNamespace}}:cache", "KUBEMIRROR-E2E-APP-1:cache"),
        ("{{.TargetNamespace}}.postgres.svc.cluster.local", "kubemirror-e2e-app-1.postgres.svc.cluster.local"),
        ("{{ .SourceNamespace }}/{{ .SourceName }}->{{ .TargetName }}", "default/app-config->app-config"),
    ];
    for (src, want) in cases {
        assert_eq!(ok(src), want, "{src}");
    }
}

#[test]
fn fields_and_missing_values() {
    assert_eq!(ok("{{ .Labels.app }}"), "web");
    assert_eq!(ok("{{ .Labels.missing }}"), "<no value>");
    assert_eq!(render_with("{{ .Labels.missing }}", None).unwrap(), "<no value>");
    assert_eq!(ok("{{ .Annotations.note }}"), "hello");
    assert_eq!(ok(r#"{{ index .Labels "app.kubernetes.io/name" }}"#), "shop");
    assert_eq!(ok(r#"[{{ index .Labels "missing" }}]"#), "[]", "index of a missing key is the empty string");
    assert_eq!(render_with(r#"[{{ index .Labels "x" }}]"#, None).unwrap(), "[]", "nil map");
    assert_eq!(ok("{{ .Labels }}"), "map[app:web app.kubernetes.io/name:shop empty: tier:frontend]");
    assert_eq!(render_with("{{ .Labels }}", None).unwrap(), "map[]");
    assert_eq!(ok("{{ $.TargetName }}"), "app-config");
    assert_eq!(ok("{{ (.Labels).app }}"), "web");
    assert_eq!(ok("{{ $l := .Labels }}{{ $l.tier }}"), "frontend");
    assert_eq!(ok("{{ $l := .Labels }}{{ $l.nope }}"), "<no value>");
}

#[test]
fn unknown_fields_are_parse_errors() {
    for (src, want) in [
        ("{{ .OptionalField }}", "can't evaluate field OptionalField in type TemplateData"),
        ("{{ .TargetNamespace.Foo }}", "can't evaluate field Foo in type string"),
        ("{{ .Labels.app.x }}", "can't evaluate field x in type string"),
        ("{{ $.Nope }}", "can't evaluate field Nope"),
    ] {
        let e = Template::parse(src).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Parse, "{src}");
        assert!(e.msg.contains(want), "{src}: {e}");
    }
    let e = err("{{ $d := . }}{{ $d.Nope }}");
    assert!(e.msg.contains("can't evaluate field Nope in type TemplateData"), "{e}");
}

#[test]
fn custom_functions() {
    let cases = [
        ("{{ upper \"abc\" }}", "ABC"),
        ("{{ lower \"ÀBC\" }}", "àbc"),
        ("{{ upper \"straße\" }}", "STRAßE"),
        (r#"{{ replace "a-b-c" "-" "_" }}"#, "a_b_c"),
        (r#"{{ replace "abc" "" "-" }}"#, "-a-b-c-"),
        (r#"{{ trimPrefix "prod-eu" "prod-" }}"#, "eu"),
        (r#"{{ trimPrefix "prod-prod-eu" "prod-" }}"#, "prod-eu"),
        (r#"{{ trimSuffix "eu-staging" "-staging" }}"#, "eu"),
        (r#"{{ hasPrefix "prod-eu" "prod" }}"#, "true"),
        (r#"{{ hasSuffix "prod-eu" "prod" }}"#, "false"),
        (r#"{{ default "fallback" .Labels.missing }}"#, "fallback"),
        (r#"{{ default "fallback" .Labels.empty }}"#, "fallback"),
        (r#"{{ default "fallback" .Labels.app }}"#, "web"),
        (r#"{{ default "fallback" 0 }}"#, "0"),
        (r#"{{ default "fallback" false }}"#, "false"),
        (r#"{{ .Labels.missing | default "piped" }}"#, "piped"),
        // Go appends the piped value as the LAST argument: replace("-", "_", ns) replaces
        // occurrences of "_" in "-" — kept for compatibility, documented in README.
        (r#"{{ .TargetNamespace | replace "-" "_" }}"#, "-"),
        (r#"{{ "-" | trimPrefix "prod-eu" }}"#, "prod-eu"),
        (r#"{{ "x" | replace "x" "y" | upper }}"#, "X"),
    ];
    for (src, want) in cases {
        assert_eq!(ok(src), want, "{src}");
    }
    let e = err("{{ upper .Labels.missing }}");
    assert_eq!(e.msg, "invalid value; expected string");
    assert_eq!(e.to_string(), "executing template: invalid value; expected string");
    assert_eq!(err("{{ upper 3 }}").msg, "expected string; found 3");
    assert_eq!(err("{{ upper nil }}").msg, "cannot assign nil to string");
    assert_eq!(err("{{ upper (len \"x\") }}").msg, "wrong type for value; expected string; got int");
    assert_eq!(err("{{ upper .Labels }}").msg, "wrong type for value; expected string; got map[string]string");
}

#[test]
fn builtins() {
    let cases = [
        ("{{ len .Labels }}", "4"),
        ("{{ len \"héllo\" }}", "6"),
        ("{{ index \"abc\" 1 }}", "98"),
        ("{{ slice \"abcdef\" 1 3 }}", "bc"),
        ("{{ slice \"abcdef\" 4 }}", "ef"),
        ("{{ print 1 2 \"x\" 3 \"y\" }}", "1 2x3y"),
        ("{{ println \"a\" 1 }}", "a 1\n"),
        ("{{ html \"<a href='x'>&\\\"\" }}", "&lt;a href=&#39;x&#39;&gt;&amp;&#34;"),
        ("{{ js \"it's <b>=\" }}", "it\\'s \\u003Cb\\u003E\\u003D"),
        ("{{ urlquery \"a b&c/d\" }}", "a+b%26c%2Fd"),
        ("{{ not true }}", "false"),
        ("{{ not \"\" }}", "true"),
        ("{{ and 1 \"x\" }}", "x"),
        ("{{ and 0 \"x\" }}", "0"),
        ("{{ or \"\" \"y\" }}", "y"),
        ("{{ or \"\" 0 }}", "0"),
        ("{{ or .Labels.missing }}", "<no value>"),
        ("{{ eq 1 1 }}", "true"),
        ("{{ eq \"a\" \"b\" \"a\" }}", "true"),
        ("{{ eq .Labels.app \"web\" }}", "true"),
        ("{{ eq .Labels.missing \"web\" }}", "false"),
        ("{{ ne 1 2 }}", "true"),
        ("{{ lt 1 2 }}", "true"),
        ("{{ le 2 2 }}", "true"),
        ("{{ gt \"b\" \"a\" }}", "true"),
        ("{{ ge 1.5 2.5 }}", "false"),
        ("{{ eq (index \"a\" 0) 97 }}", "true"),
        ("{{ eq nil nil }}", "true"),
    ];
    for (src, want) in cases {
        assert_eq!(ok(src), want, "{src}");
    }
    for (src, want) in [
        ("{{ eq 1 \"1\" }}", "error calling eq: incompatible types for comparison"),
        ("{{ lt 1 1.5 }}", "error calling lt: incompatible types for comparison"),
        ("{{ lt true false }}", "error calling lt: invalid type for comparison"),
        ("{{ eq .Labels .Labels }}", "error calling eq: non-comparable type"),
        ("{{ len 3 }}", "error calling len: len of type int"),
        ("{{ len .Labels.missing }}", "error calling len: len of nil value"),
        ("{{ index .Labels 1 }}", "error calling index: value has type int; should be string"),
        ("{{ index \"abc\" 5 }}", "error calling index: index out of range"),
        ("{{ index .Labels.missing \"x\" }}", "error calling index: index of untyped nil"),
        ("{{ index . \"x\" }}", "error calling index: can't index item of type TemplateData"),
        ("{{ slice \"abc\" 2 1 }}", "error calling slice: invalid slice index: 2 > 1"),
        ("{{ slice \"abc\" 1 2 3 }}", "error calling slice: cannot 3-index slice a string"),
    ] {
        let e = err(src);
        assert!(e.msg.starts_with(want), "{src}: {e}");
        assert_eq!(e.kind, ErrorKind::Exec);
    }
}

#[test]
fn short_circuit_skips_failing_operands() {
    assert_eq!(ok("{{ and false (upper .Labels.missing) }}"), "false");
    assert_eq!(ok("{{ or \"x\" (upper .Labels.missing) }}"), "x");
    assert!(render("{{ and true (upper .Labels.missing) }}").is_err());
}

#[test]
fn printf_verbs() {
    let cases = [
        (r#"{{ printf "%s-%d" "a" 3 }}"#, "a-3"),
        (r#"{{ printf "%v %v %v %v" "s" 1 true 1.5 }}"#, "s 1 true 1.5"),
        (r#"{{ printf "%q" "a\"b" }}"#, r#""a\"b""#),
        (
            r#"{{ printf "%5s|%-5s|%05d|%x|%X|%o|%b|%c" "ab" "cd" 42 255 255 8 5 65 }}"#,
            "   ab|cd   |00042|ff|FF|10|101|A",
        ),
        (r#"{{ printf "%.2f %e %g %G" 3.14159 1234.5678 0.00001234 1e21 }}"#, "3.14 1.234568e+03 1.234e-05 1E+21"),
        (r#"{{ printf "%v" 1000000.0 }}"#, "1e+06"),
        (r#"{{ printf "%v" 100000.0 }}"#, "100000"),
        (r#"{{ printf "%+d % d %t" 5 5 false }}"#, "+5  5 false"),
        (r#"{{ printf "%.3s" "abcdef" }}"#, "abc"),
        (r#"{{ printf "%d%%" 50 }}"#, "50%"),
        (r#"{{ printf "%d" "x" }}"#, "%!d(string=x)"),
        (r#"{{ printf "%s" 5 }}"#, "%!s(int=5)"),
        (r#"{{ printf "%s %s" "a" }}"#, "a %!s(MISSING)"),
        (r#"{{ printf "%s" "a" "b" }}"#, "a%!(EXTRA string=b)"),
        (r#"{{ printf "%s" .Labels.missing }}"#, "%!s(<nil>)"),
        (r#"{{ printf "%v" .Labels.missing }}"#, "<nil>"),
        (r#"{{ printf "%d" }}"#, "%!d(MISSING)"),
        (r#"{{ printf "%" }}"#, "%!(NOVERB)"),
        (r#"{{ printf "%*d" 4 7 }}"#, "   7"),
        (r#"{{ printf "%99999999d" 1 }}"#, "%!(NOVERB)%!(EXTRA int=1)"),
        (r#"{{ printf "%*d" "x" 1 }}"#, "%!(BADWIDTH)1"),
        (r#"{{ .TargetNamespace | printf "ns=%s" }}"#, "ns=kubemirror-e2e-app-1"),
    ];
    for (src, want) in cases {
        assert_eq!(ok(src), want, "{src}");
    }
}

#[test]
fn literals() {
    let cases = [
        (r#"{{ "a\tb\u00e9\x41" }}"#, "a\tbéA"),
        ("{{ `raw \\n` }}", "raw \\n"),
        ("{{ 'a' }}", "97"),
        ("{{ 0x1F }}", "31"),
        ("{{ 017 }}", "15"),
        ("{{ 0b101 }}", "5"),
        ("{{ 1_000 }}", "1000"),
        ("{{ -3 }}", "-3"),
        ("{{ 1.50 }}", "1.5"),
        ("{{ 1e3 }}", "1000"),
        ("{{ .5 }}", "0.5"),
        ("{{ true }}", "true"),
    ];
    for (src, want) in cases {
        assert_eq!(ok(src), want, "{src}");
    }
}

#[test]
fn control_flow_and_trimming() {
    let cases = [
        (
            r#"{{ if hasPrefix .TargetNamespace "prod" }}error{{ else if hasPrefix .TargetNamespace "kube" }}warn{{ else }}debug{{ end }}"#,
            "warn",
        ),
        ("{{ if .Labels.missing }}yes{{ else }}no{{ end }}", "no"),
        ("{{ if .Labels }}has labels{{ end }}", "has labels"),
        ("{{ if 0 }}a{{ else if \"\" }}b{{ else }}c{{ end }}", "c"),
        ("{{ if $x := .Labels.app }}{{ $x }}{{ end }}", "web"),
        ("{{ if false }}{{ else if $y := \"second\" }}{{ $y }}{{ end }}", "second"),
        ("{{ $v := 1 }}{{ if true }}{{ $v = 2 }}{{ end }}{{ $v }}", "2"),
        ("a  {{- \"b\" -}}  c", "abc"),
        ("a\n{{- /* comment */ -}}\nb", "ab"),
        ("x{{/* a\nmultiline comment */}}y", "xy"),
        ("{{ if true -}}\n  yes\n{{- end }}", "yes"),
        ("{{-3}}", "-3"),
        ("{{ $x := \"decl\" }}", ""),
        ("plain text only", "plain text only"),
        ("", ""),
    ];
    for (src, want) in cases {
        assert_eq!(ok(src), want, "{src}");
    }
    // A YAML block scalar ends with a newline, kept as Go does.
    assert_eq!(ok("{{ if true }}error{{ end }}\n"), "error\n");
}

#[test]
fn unsupported_and_malformed_are_parse_errors() {
    let cases = [
        ("{{ range .Labels }}x{{ end }}", "{{range}} is not supported"),
        ("{{ with .Labels }}x{{ end }}", "{{with}} is not supported"),
        ("{{ define \"x\" }}{{ end }}", "{{define}} is not supported"),
        ("{{ template \"x\" }}", "{{template}} is not supported"),
        ("{{ block \"x\" . }}{{ end }}", "{{block}} is not supported"),
        ("{{ break }}", "{{break}} is not supported"),
        ("{{ regexFind \"a\" \"b\" }}", "function \"regexFind\" not defined"),
        ("{{ toString 1 }}", "function \"toString\" not defined"),
        ("{{ b64enc \"x\" }}", "function \"b64enc\" not defined"),
        ("{{ call .X }}", "function \"call\" is not supported"),
        ("{{ upper }}", "wrong number of args for upper: want 1 got 0"),
        ("{{ upper \"a\" \"b\" }}", "wrong number of args for upper: want 1 got 2"),
        ("{{ \"a\" | upper \"b\" }}", "wrong number of args for upper: want 1 got 2"),
        ("{{ default \"a\" }}", "wrong number of args for default: want 2 got 1"),
        ("{{ printf }}", "want at least 1 got 0"),
        ("{{ \"a\" | \"b\" }}", "non executable command in pipeline stage 2"),
        ("{{ \"a\" \"b\" }}", "can't give argument to non-function"),
        ("{{ nil }}", "nil is not a command"),
        ("{{ }}", "missing value for command"),
        ("{{ if }}x{{ end }}", "missing value for if"),
        ("{{ if true }}x", "{{if}} without {{end}}"),
        ("{{ end }}", "unexpected {{end}}"),
        ("{{ else }}", "unexpected {{else}}"),
        ("{{ $x }}", "undefined variable \"$x\""),
        ("{{ $x = 1 }}", "undefined variable \"$x\""),
        ("{{ if true }}{{ $x := 1 }}{{ end }}{{ $x }}", "undefined variable \"$x\""),
        ("{{ $a, $b := 1 }}", "multiple variables"),
        ("{{ (\"a\"", "unclosed action"),
        ("{{ .TargetNamespace", "unclosed action"),
        ("{{/* open", "unclosed comment"),
        ("{{/* c */ x}}", "comment ends before closing delimiter"),
        ("{{ \"open }}", "unterminated quoted string"),
        ("{{ \"bad \\q\" }}", "invalid escape"),
        ("{{ 'ab' }}", "malformed character constant"),
        ("{{ 3x }}", "bad number syntax"),
        ("{{ 1i }}", "complex number"),
        ("{{ 99999999999999999999 }}", "overflows int"),
        ("{{ # }}", "unrecognized character in action"),
        ("{{ upper(.X) }}", "missing space"),
        ("{{ \"x\".Foo }}", "unexpected . after term"),
        ("{{ (upper \"x\" $y := 1) }}", "undefined variable"),
        ("{{ ($y := 1) }}", "variables may only be declared"),
    ];
    for (src, want) in cases {
        let e = Template::parse(src).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Parse, "{src}");
        assert!(e.msg.contains(want), "{src}: got {e}, want {want}");
        assert!(e.to_string().starts_with("template: line "), "{e}");
    }
}

#[test]
fn nesting_is_bounded() {
    let ok_depth = "(".repeat(MAX_DEPTH) + "\"x\"" + &")".repeat(MAX_DEPTH);
    assert_eq!(ok(&format!("{{{{ {ok_depth} }}}}")), "x");
    // 10^5 nested parentheses: refused by the token limit before parsing, fast, no stack overflow.
    let deep = "(".repeat(100_000) + "1" + &")".repeat(100_000);
    let started = Instant::now();
    let e = Template::parse(&format!("{{{{ {deep} }}}}")).unwrap_err();
    assert!(e.msg.contains("more than 20000 tokens"), "{e}");
    // Within the token limit, the parser stops at MAX_DEPTH.
    let deep = "(".repeat(5_000) + "1" + &")".repeat(5_000);
    let e = Template::parse(&format!("{{{{ {deep} }}}}")).unwrap_err();
    assert!(e.msg.contains("nesting deeper than 64"), "{e}");
    let ifs = "{{ if true }}".repeat(2_000) + &"{{ end }}".repeat(2_000);
    assert!(Template::parse(&ifs).unwrap_err().msg.contains("nesting deeper"));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn hostile_templates_are_bounded() {
    // 10^6 pipes: refused by the token limit before parsing.
    let pipes = "{{ \"x\"".to_string() + &" | upper".repeat(1_000_000) + " }}";
    let started = Instant::now();
    let e = render(&pipes).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Parse, "{e}");
    assert!(e.msg.contains("more than 20000 tokens"), "{e}");
    // Below the token limit, a long pipeline runs within the step budget...
    assert_eq!(ok(&("{{ \"x\"".to_string() + &" | upper".repeat(5_000) + " }}")), "X");
    // ...which stops evaluation that would go on too long.
    let steps = Limits { max_steps: 1_000, ..Limits::default() };
    let long = Template::parse(&("{{ \"x\"".to_string() + &" | upper".repeat(5_000) + " }}")).unwrap();
    let d = Data {
        target_namespace: "t",
        source_namespace: "s",
        source_name: "n",
        target_name: "n",
        labels: None,
        annotations: None,
    };
    let e = long.execute(&d, steps).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Limit);
    assert!(e.msg.contains("exceeded 1000 steps"), "{e}");
    // Exponential growth through nested replace: stopped at the output cap before allocating.
    let mut amp = "\"aaaaaaaaaaaaaaaa\"".to_string();
    for _ in 0..12 {
        amp = format!("(replace {amp} \"a\" \"aaaaaaaaaaaaaaaa\")");
    }
    let e = render(&format!("{{{{ {amp} }}}}")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Limit, "{e}");
    assert!(e.msg.contains("exceeds 65536 bytes"), "{e}");
    // Huge widths: refused by the output cap before any padding is allocated.
    assert_eq!(render(r#"{{ printf "%9999999d" 1 }}"#).unwrap_err().kind, ErrorKind::Limit);
    assert_eq!(render(r#"{{ printf "%.9999999f" 1.5 }}"#).unwrap_err().kind, ErrorKind::Limit);
    // Output made of many small pieces.
    let many = "{{ \"0123456789abcdef\" }}".repeat(5000);
    assert_eq!(render(&many).unwrap_err().kind, ErrorKind::Limit);
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
}

#[test]
fn line_numbers_in_errors() {
    let e = Template::parse("a\nb\n{{ nope }}").unwrap_err();
    assert_eq!(e.to_string(), "template: line 3: function \"nope\" not defined");
}
