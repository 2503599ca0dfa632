//! Service allocations, because mirroring a Service copies server-assigned fields (BEHAVIOR.md W-5):
//! the real apiserver assigns `spec.clusterIP(s)` and node ports, refuses ones already allocated
//! ("provided IP is already allocated"), refuses changing a clusterIP ("may not change once set"), and
//! keeps the allocated values when an update omits them (patchAllocatedValues). Simplified: IPv4 only,
//! sequential allocation from 10.96.0.0/12 and 30000-32767, no LoadBalancer status.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::errors::FieldError;

const IP_FIRST: u32 = u32::from_be_bytes([10, 96, 0, 10]);
const IP_LAST: u32 = u32::from_be_bytes([10, 111, 255, 254]);
const PORT_FIRST: u16 = 30000;
const PORT_LAST: u16 = 32767;

#[derive(Debug, Default)]
pub struct Allocations {
    ips: BTreeMap<u32, String>,
    ports: BTreeMap<u16, String>,
}

fn strings_literal(ips: &[&str]) -> String {
    let quoted: Vec<String> = ips.iter().map(|i| format!("{i:?}")).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

fn needs_ip(spec: &Value) -> bool {
    spec["type"].as_str() != Some("ExternalName") && spec["clusterIP"].as_str() != Some("None")
}

fn needs_node_ports(spec: &Value) -> bool {
    matches!(spec["type"].as_str(), Some("NodePort" | "LoadBalancer"))
}

impl Allocations {
    fn free_ip(&self) -> Option<u32> {
        (IP_FIRST..=IP_LAST).find(|ip| !self.ips.contains_key(ip))
    }

    fn free_port(&self) -> Option<u16> {
        (PORT_FIRST..=PORT_LAST).find(|p| !self.ports.contains_key(p))
    }

    /// Fills the defaults and allocations of a Service being created (`old`: None) or updated.
    /// With `dry_run` nothing is recorded.
    pub fn admit(
        &mut self,
        key: &str,
        old: Option<&Value>,
        v: &mut Value,
        dry_run: bool,
    ) -> Result<(), Vec<FieldError>> {
        if !v["spec"].is_object() {
            v["spec"] = json!({});
        }
        let spec = &mut v["spec"];
        let old_spec = old.map(|o| &o["spec"]);
        if spec.get("type").is_none_or(Value::is_null) {
            spec["type"] = json!("ClusterIP");
        }
        if spec.get("sessionAffinity").is_none_or(Value::is_null) {
            spec["sessionAffinity"] = json!("None");
        }
        let mut errs = Vec::new();
        let mut new_ip: Option<u32> = None;
        if needs_ip(spec) {
            let old_ip = old_spec.and_then(|o| o["clusterIP"].as_str()).filter(|s| !s.is_empty() && *s != "None");
            let asked = spec["clusterIP"].as_str().filter(|s| !s.is_empty()).map(String::from);
            match (asked, old_ip) {
                (None, Some(o)) => {
                    spec["clusterIP"] = json!(o);
                }
                (Some(a), Some(o)) if a != o => errs.push(FieldError {
                    field: "spec.clusterIPs[0]".into(),
                    reason: "FieldValueInvalid",
                    detail: format!("Invalid value: {}: may not change once set", strings_literal(&[&a])),
                }),
                (Some(_), Some(_)) => {}
                (asked, None) => {
                    let ip = match asked {
                        Some(a) => match a.parse::<Ipv4Addr>() {
                            Ok(ip) if self.ips.get(&u32::from(ip)).is_some_and(|owner| owner != key) => {
                                errs.push(FieldError {
                                    field: "spec.clusterIPs".into(),
                                    reason: "FieldValueInvalid",
                                    detail: format!(
                                        "Invalid value: {}: failed to allocate IP {a}: provided IP is already allocated",
                                        strings_literal(&[&a])
                                    ),
                                });
                                None
                            }
                            Ok(ip) => Some(u32::from(ip)),
                            Err(_) => {
                                errs.push(FieldError::invalid(
                                    "spec.clusterIPs[0]",
                                    &a,
                                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                                ));
                                None
                            }
                        },
                        None => self.free_ip(),
                    };
                    if let Some(ip) = ip {
                        spec["clusterIP"] = json!(Ipv4Addr::from(ip).to_string());
                        new_ip = Some(ip);
                    }
                }
            }
            if let Some(ip) = spec["clusterIP"].as_str().map(String::from) {
                spec["clusterIPs"] = json!([ip]);
                spec["ipFamilies"] = json!(["IPv4"]);
                spec["ipFamilyPolicy"] = json!("SingleStack");
                spec["internalTrafficPolicy"] = spec.get("internalTrafficPolicy").cloned().unwrap_or(json!("Cluster"));
            }
        } else if spec["clusterIP"].as_str() == Some("None") {
            spec["clusterIPs"] = json!(["None"]);
        }
        let node_ports = needs_node_ports(spec);
        let old_ports: Vec<Value> = old_spec.and_then(|o| o["ports"].as_array().cloned()).unwrap_or_default();
        let mut new_ports: Vec<u16> = Vec::new();
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for (i, p) in ports.iter_mut().enumerate() {
                if !p.is_object() {
                    continue;
                }
                if p.get("protocol").is_none_or(Value::is_null) {
                    p["protocol"] = json!("TCP");
                }
                if p.get("targetPort").is_none_or(Value::is_null) {
                    p["targetPort"] = p["port"].clone();
                }
                if !node_ports {
                    continue;
                }
                let carried = old_ports
                    .iter()
                    .find(|o| o["port"] == p["port"] && o["name"] == p["name"])
                    .and_then(|o| o["nodePort"].as_u64());
                let asked = p["nodePort"].as_u64().filter(|n| *n != 0);
                let port = match (asked, carried) {
                    (None, Some(c)) => Some(c as u16),
                    (Some(a), Some(c)) if a == c => Some(c as u16),
                    (Some(a), _) => {
                        let a16 = u16::try_from(a).ok().filter(|n| (PORT_FIRST..=PORT_LAST).contains(n));
                        match a16 {
                            Some(n)
                                if self.ports.get(&n).is_some_and(|owner| owner != key) || new_ports.contains(&n) =>
                            {
                                errs.push(FieldError {
                                    field: format!("spec.ports[{i}].nodePort"),
                                    reason: "FieldValueInvalid",
                                    detail: format!("Invalid value: {a}: provided port is already allocated"),
                                });
                                None
                            }
                            Some(n) => Some(n),
                            None => {
                                errs.push(FieldError {
                                    field: format!("spec.ports[{i}].nodePort"),
                                    reason: "FieldValueInvalid",
                                    detail: format!(
                                        "Invalid value: {a}: provided port is not in the valid range. The range of valid ports is {PORT_FIRST}-{PORT_LAST}"
                                    ),
                                });
                                None
                            }
                        }
                    }
                    (None, None) => {
                        let free =
                            (PORT_FIRST..=PORT_LAST).find(|n| !self.ports.contains_key(n) && !new_ports.contains(n));
                        free.or_else(|| self.free_port())
                    }
                };
                if let Some(n) = port {
                    p["nodePort"] = json!(n);
                    new_ports.push(n);
                }
            }
        }
        if node_ports && spec.get("externalTrafficPolicy").is_none_or(Value::is_null) {
            spec["externalTrafficPolicy"] = json!("Cluster");
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        if !dry_run {
            self.release(key);
            if let Some(ip) =
                new_ip.or_else(|| spec["clusterIP"].as_str().and_then(|s| s.parse::<Ipv4Addr>().ok()).map(u32::from))
            {
                self.ips.insert(ip, key.to_string());
            }
            for n in new_ports {
                self.ports.insert(n, key.to_string());
            }
        }
        Ok(())
    }

    /// Frees what a deleted Service held.
    pub fn release(&mut self, key: &str) {
        self.ips.retain(|_, owner| owner != key);
        self.ports.retain(|_, owner| owner != key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_refuses_duplicates_and_keeps_on_update() {
        let mut a = Allocations::default();
        let mut s1 = json!({"spec": {"ports": [{"port": 80}]}});
        a.admit("ns/a", None, &mut s1, false).unwrap();
        let ip = s1["spec"]["clusterIP"].as_str().unwrap().to_string();
        assert_eq!(s1["spec"]["clusterIPs"], json!([ip]));
        assert_eq!(s1["spec"]["ports"][0]["targetPort"], 80);
        let mut copy = s1.clone();
        let errs = a.admit("other/a", None, &mut copy, false).unwrap_err();
        assert_eq!(errs[0].field, "spec.clusterIPs");
        assert!(errs[0].detail.ends_with("provided IP is already allocated"));
        // An update without clusterIP keeps it; a different one is refused.
        let mut upd = json!({"spec": {"ports": [{"port": 81}]}});
        a.admit("ns/a", Some(&s1), &mut upd, false).unwrap();
        assert_eq!(upd["spec"]["clusterIP"], json!(ip));
        let mut moved = json!({"spec": {"clusterIP": "10.96.9.9"}});
        assert!(
            a.admit("ns/a", Some(&s1), &mut moved, false).unwrap_err()[0].detail.contains("may not change once set")
        );
        let mut np = json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}});
        a.admit("ns/np", None, &mut np, false).unwrap();
        let mut np2 = json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}});
        assert!(a.admit("ns/np2", None, &mut np2, false).is_err());
        a.release("ns/np");
        assert!(a.admit("ns/np2", None, &mut np2, false).is_ok());
        let mut headless = json!({"spec": {"clusterIP": "None"}});
        a.admit("ns/h", None, &mut headless, false).unwrap();
        assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
    }
}
