use super::*;

fn data(value: f64, labels: &[(&str, &str)]) -> TemplateData {
    TemplateData {
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        value,
        ..TemplateData::default()
    }
}

fn render(text: &str, value: f64, labels: &[(&str, &str)]) -> String {
    expand("Test", text, &data(value, labels)).unwrap_or_else(|e| format!("ERR {e}"))
}

#[test]
fn value_prints_like_go_percent_v() {
    // Goal: `{{ $value }}` prints strconv.FormatFloat(v, 'g', -1, 64). Method: the outputs the
    // spec checked against promtool 2.42 (§4).
    let cases = [
        (999999.0, "999999"),
        (123456.789, "123456.789"),
        (1000000.0, "1e+06"),
        (12345678.0, "1.2345678e+07"),
        (0.0001, "0.0001"),
        (0.00012345, "0.00012345"),
        (0.00001234, "1.234e-05"),
        (2.0 / 300.0, "0.006666666666666667"),
        (f64::NAN, "NaN"),
        (f64::INFINITY, "+Inf"),
        (f64::NEG_INFINITY, "-Inf"),
        (0.0, "0"),
        (-1.5, "-1.5"),
        (150.0, "150"),
    ];
    for (v, want) in cases {
        assert_eq!(render("{{ $value }}", v, &[]), want, "value {v:e}");
    }
}

#[test]
fn humanize_uses_si_prefixes_with_four_significant_digits() {
    // Goal: humanize matches Prometheus 2.42. Method: Go outputs worked by hand from
    // template.go and fmt's %.4g.
    assert_eq!(humanize(1234567.0), "1.235M");
    assert_eq!(humanize(1.234e-05), "12.34u");
    assert_eq!(humanize(0.0), "0");
    assert_eq!(humanize(999.0), "999");
    assert_eq!(humanize(1000.0), "1k");
    assert_eq!(humanize(0.5), "500m");
    assert_eq!(humanize(-2500.0), "-2.5k");
    assert_eq!(humanize(f64::INFINITY), "+Inf");
    assert_eq!(humanize(f64::NAN), "NaN");
    assert_eq!(humanize(1e30), "1e+06Y");
}

#[test]
fn humanize1024_uses_binary_prefixes_only_above_one() {
    // Goal: humanize1024 matches Prometheus 2.42. Method: hand-derived Go outputs.
    assert_eq!(humanize1024(1024.0), "1ki");
    assert_eq!(humanize1024(1073741824.0), "1Gi");
    assert_eq!(humanize1024(1536.0), "1.5ki");
    assert_eq!(humanize1024(0.5), "0.5");
    assert_eq!(humanize1024(1.0), "1");
    assert_eq!(humanize1024(1023.0), "1023");
}

#[test]
fn humanize_duration_splits_days_hours_minutes_seconds() {
    // Goal: humanizeDuration matches Prometheus 2.42. Method: docs' example 123456s and edges.
    assert_eq!(humanize_duration(123456.0), "1d 10h 17m 36s");
    assert_eq!(humanize_duration(3600.0), "1h 0m 0s");
    assert_eq!(humanize_duration(61.5), "1m 1s");
    assert_eq!(humanize_duration(1.5), "1.5s");
    assert_eq!(humanize_duration(0.0), "0s");
    assert_eq!(humanize_duration(0.25), "250ms");
    assert_eq!(humanize_duration(0.000001), "1us");
    assert_eq!(humanize_duration(-90.0), "-1m 30s");
}

#[test]
fn humanize_percentage_multiplies_by_one_hundred() {
    // Goal: humanizePercentage matches the spec's checked outputs (§4).
    assert_eq!(humanize_percentage(0.1), "10%");
    assert_eq!(humanize_percentage(0.10989), "10.99%");
    assert_eq!(humanize_percentage(0.99375), "99.38%");
    assert_eq!(humanize_percentage(f64::INFINITY), "+Inf%");
    assert_eq!(humanize_percentage(1234567.0), "1.235e+08%");
    assert_eq!(humanize_percentage(0.9), "90%");
}

#[test]
fn humanize_timestamp_prints_go_time_string_in_utc() {
    // Goal: humanizeTimestamp prints time.Time.String() in UTC. Method: known instants.
    assert_eq!(humanize_timestamp(0.0), "1970-01-01 00:00:00 +0000 UTC");
    assert_eq!(
        humanize_timestamp(1435065584.128),
        "2015-06-23 13:19:44.128 +0000 UTC"
    );
}

#[test]
fn printf_formats_like_go() {
    // Goal: printf follows Go's fmt for the verbs rule files use. Method: hand-checked outputs.
    assert_eq!(render("{{ printf \"%.2f\" $value }}", 150.0, &[]), "150.00");
    assert_eq!(
        render("{{ $value | printf \"%.2f\" }}", 150.0, &[]),
        "150.00"
    );
    assert_eq!(render("{{ printf \"%.1f%%\" 12.345 }}", 0.0, &[]), "12.3%");
    assert_eq!(render("{{ printf \"%d\" 3 }}", 0.0, &[]), "3");
    assert_eq!(
        render("{{ printf \"%d\" $value }}", 1.5, &[]),
        "%!d(float64=1.5)"
    );
    assert_eq!(
        render("{{ printf \"%s-%s\" \"a\" }}", 0.0, &[]),
        "a-%!s(MISSING)"
    );
    assert_eq!(
        render("{{ printf \"%5.1f|%-4s|\" $value \"x\" }}", 2.25, &[]),
        "  2.2|x   |"
    );
    assert_eq!(
        render("{{ printf \"%e\" $value }}", 1234.5, &[]),
        "1.234500e+03"
    );
    assert_eq!(render("{{ printf \"%g\" $value }}", 1e21, &[]), "1e+21");
    assert_eq!(
        render("{{ printf \"%q\" $labels.pod }}", 0.0, &[("pod", "a\"b")]),
        "\"a\\\"b\""
    );
    assert_eq!(
        render("{{ printf \"%.3g\" $value }}", 0.0001234, &[]),
        "0.000123"
    );
    assert_eq!(render("{{ printf \"%v\" $value }}", 0.1, &[]), "0.1");
}

#[test]
fn labels_fields_and_missing_labels_print_as_text_or_empty() {
    // Goal: $labels.x and .Labels.x read the sample's labels; a missing label is "".
    let labels = [("pod", "api-0"), ("namespace", "prod")];
    assert_eq!(
        render(
            "Pod {{ $labels.pod }} in {{ .Labels.namespace }}",
            0.0,
            &labels
        ),
        "Pod api-0 in prod"
    );
    assert_eq!(render("[{{ $labels.nope }}]", 0.0, &labels), "[]");
    assert_eq!(
        render("{{ $labels }}", 0.0, &labels),
        "map[namespace:prod pod:api-0]"
    );
    assert_eq!(render("{{ index $labels \"pod\" }}", 0.0, &labels), "api-0");
}

#[test]
fn external_labels_and_url_are_available() {
    // Goal: $externalLabels and $externalURL are bound as Prometheus binds them.
    let mut d = data(1.0, &[]);
    d.external_labels
        .insert("cluster".to_string(), "eu-1".to_string());
    d.external_url = "http://prom".to_string();
    assert_eq!(
        expand("A", "{{ $externalLabels.cluster }} {{ $externalURL }}", &d).ok(),
        Some("eu-1 http://prom".to_string())
    );
}

#[test]
fn string_functions_follow_go() {
    // Goal: title/toUpper/toLower/match/reReplaceAll/stripPort behave as in Go.
    let labels = [("pod", "api-server_0 x")];
    assert_eq!(
        render("{{ $labels.pod | title }}", 0.0, &labels),
        "Api-Server_0 X"
    );
    assert_eq!(
        render("{{ $labels.pod | toUpper }}", 0.0, &labels),
        "API-SERVER_0 X"
    );
    assert_eq!(render("{{ \"AbC\" | toLower }}", 0.0, &labels), "abc");
    assert_eq!(
        render(
            "{{ if match \"^api\" $labels.pod }}yes{{ end }}",
            0.0,
            &labels
        ),
        "yes"
    );
    assert_eq!(
        render(
            "{{ reReplaceAll \"(a+)\" \"<$1>\" \"baab\" }}",
            0.0,
            &labels
        ),
        "b<aa>b"
    );
    assert_eq!(
        render("{{ stripPort \"host:9090\" }}", 0.0, &labels),
        "host"
    );
}

#[test]
fn if_else_chains_and_comparisons_choose_a_branch() {
    // Goal: if / else if / else with comparison builtins. Method: three values, three branches.
    let t = "{{ if gt $value 0.9 }}crit{{ else if gt $value 0.5 }}warn{{ else }}ok{{ end }}";
    assert_eq!(render(t, 0.95, &[]), "crit");
    assert_eq!(render(t, 0.6, &[]), "warn");
    assert_eq!(render(t, 0.1, &[]), "ok");
    assert_eq!(
        render(
            "{{ if and $labels.a (not $labels.b) }}A{{ end }}",
            0.0,
            &[("a", "1")]
        ),
        "A"
    );
    assert_eq!(
        render(
            "{{ if eq $labels.a \"1\" \"2\" }}hit{{ end }}",
            0.0,
            &[("a", "2")]
        ),
        "hit"
    );
    assert!(
        render("{{ if gt $value 1 }}x{{ end }}", 2.0, &[])
            .contains("incompatible types for comparison")
    );
}

#[test]
fn variables_with_and_range_work_in_blocks() {
    // Goal: variable declarations, with, and range over a map (sorted keys).
    let labels = [("b", "2"), ("a", "1")];
    assert_eq!(
        render(
            "{{ $x := $labels.a }}{{ $x }}{{ $x = \"z\" }}{{ $x }}",
            0.0,
            &labels
        ),
        "1z"
    );
    assert_eq!(
        render(
            "{{ with $labels.a }}<{{ . }}>{{ else }}none{{ end }}",
            0.0,
            &labels
        ),
        "<1>"
    );
    assert_eq!(
        render(
            "{{ with $labels.q }}<{{ . }}>{{ else }}none{{ end }}",
            0.0,
            &labels
        ),
        "none"
    );
    assert_eq!(
        render(
            "{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}",
            0.0,
            &labels
        ),
        "a=1;b=2;"
    );
}

#[test]
fn trim_markers_and_comments_remove_text() {
    // Goal: `{{-`, `-}}` trim adjacent whitespace and comments print nothing.
    assert_eq!(render("a  {{- \"b\" -}}  c", 0.0, &[]), "abc");
    assert_eq!(render("a{{/* note */}}b", 0.0, &[]), "ab");
}

#[test]
fn unknown_functions_and_bad_syntax_are_errors() {
    // Goal: templates Go rejects are errors here too (the caller prints them in place).
    assert!(expand("X", "{{ query \"up\" }}", &TemplateData::default()).is_err());
    assert!(expand("X", "{{ $value ", &TemplateData::default()).is_err());
    assert!(expand("X", "{{ if $value }}x", &TemplateData::default()).is_err());
    assert!(expand("X", "{{ $nope }}", &TemplateData::default()).is_err());
    assert!(check("X", "{{ humanize $value }}").is_ok());
    assert_eq!(
        check("V", "{{ $value | nosuch }}").map_err(|e| e.to_string()),
        Err("template: __alert_V:1: function \"nosuch\" not defined".to_string())
    );
    assert!(check("X", "{{ end }}").is_err());
}

#[test]
fn numeric_strings_are_accepted_by_humanize_functions() {
    // Goal: the numeric helpers accept a numeric string (convertToFloat), e.g. a label value.
    assert_eq!(
        render("{{ humanize $labels.n }}", 0.0, &[("n", "2048")]),
        "2.048k"
    );
    assert!(render("{{ humanize $labels.n }}", 0.0, &[("n", "abc")]).starts_with("ERR"));
}

#[test]
fn seed_llm_cost_annotation_renders_dollars() {
    // Goal: the seed's HighLLMCosts description after YAML unescaping (§4, checked output).
    assert_eq!(
        render(
            "LLM API costs are ${{ $value | printf \"%.2f\" }}/hour",
            150.0,
            &[]
        ),
        "LLM API costs are $150.00/hour"
    );
}

#[test]
fn execution_errors_name_line_column_and_command_like_go() {
    // Goal: a failing function prints Go's "template: NAME:LINE:COL: executing ... at <cmd>"
    // text, columns shifted by Prometheus's prepended definitions on line 1. Method: the
    // message promtool 2.42 printed for `humanize` of a non-number (fixture
    // template-functions.yaml), and a second-line error.
    let err = expand(
        "TemplateText",
        "{{ humanize $labels.gpu_model }}",
        &data(0.0, &[("gpu_model", "H100-Sxm")]),
    )
    .expect_err("humanize of text fails");
    assert_eq!(
        err.to_string(),
        "error executing template __alert_TemplateText: template: __alert_TemplateText:1:115: executing \"__alert_TemplateText\" at <humanize $labels.gpu_model>: error calling humanize: strconv.ParseFloat: parsing \"H100-Sxm\": invalid syntax"
    );
    let err = expand(
        "A",
        "x\n  {{ $labels.a | humanize }}",
        &data(0.0, &[("a", "q")]),
    )
    .expect_err("fails");
    assert!(
        err.to_string().contains(
            "__alert_A:2:17: executing \"__alert_A\" at <humanize>: error calling humanize"
        ),
        "{err}"
    );
}
