//! Renders `haproxy.cfg` from the simulated configuration the way the pfSense HAProxy
//! package does: backends as `<name>_ipvANY`, `check inter`, `ssl`/`verify none`,
//! `http-check send`, the admin stats socket exposing listeners and a server-state file.
//! Every address is mapped into 127.0.0.0/8; anything else is refused.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

use cairn_core::net::AddrMap;
use serde_json::Value;

use super::model::Collection;
use super::world::World;

/// Paths of the files the rendered configuration refers to.
#[derive(Debug, Clone)]
pub struct RenderPaths<'a> {
    /// The admin stats socket.
    pub socket: &'a Path,
    /// The server-state file written before every reload.
    pub state_file: &'a Path,
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn n(v: &Value, k: &str) -> Option<u64> {
    match v.get(k)? {
        Value::Number(x) => x.as_u64(),
        Value::String(x) => x.parse().ok(),
        _ => None,
    }
}

/// Maps an address from the simulated network into loopback, refusing anything else.
pub fn map_loopback(map: &AddrMap, addr: &str) -> Result<IpAddr, String> {
    let ip: IpAddr = addr.parse().map_err(|_| {
        format!(
            "address {addr:?} is not an IP address (host names are not resolved by the simulator)"
        )
    })?;
    let mapped = map.map(ip);
    if mapped.is_loopback() {
        Ok(mapped)
    } else {
        Err(format!(
            "refusing to use {addr}: it does not map into 127.0.0.0/8 (address map `{map}`)"
        ))
    }
}

/// Renders the whole configuration.
pub fn render(world: &World, map: &AddrMap, paths: &RenderPaths<'_>) -> Result<String, String> {
    let st = &world.haproxy_settings;
    let mut c = String::new();
    let _ = writeln!(c, "# Automaticaly generated, dont edit manually.");
    let _ = writeln!(c, "global");
    let _ = writeln!(c, "\tmaxconn\t\t\t{}", n(st, "maxconn").unwrap_or(1000));
    let _ = writeln!(
        c,
        "\tstats socket {} level admin  expose-fd listeners",
        paths.socket.display()
    );
    let _ = writeln!(c, "\tnbthread\t\t\t{}", n(st, "nbthread").unwrap_or(1));
    let hard = s(st, "hard_stop_after");
    if !hard.is_empty() {
        let _ = writeln!(c, "\thard-stop-after\t\t{hard}");
    }
    let _ = writeln!(c, "\tserver-state-file {}", paths.state_file.display());
    for line in s(st, "advanced").lines() {
        let _ = writeln!(c, "\t{line}");
    }
    let _ = writeln!(c);

    for fe in world.list(Collection::Frontends) {
        if s(fe, "status") == "disabled" {
            continue;
        }
        let name = s(fe, "name");
        let _ = writeln!(c, "frontend {name}");
        let addrs = fe
            .get("a_extaddr")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for a in &addrs {
            let port = s(a, "extaddr_port");
            let ip = match s(a, "extaddr") {
                "custom" => map_loopback(map, s(a, "extaddr_custom"))
                    .map_err(|e| format!("frontend {name}: {e}"))?,
                "localhost_ipv4" => IpAddr::from([127, 0, 0, 1]),
                other => {
                    return Err(format!(
                        "frontend {name}: extaddr `{other}` would bind outside loopback; the simulator only binds mapped custom addresses"
                    ));
                }
            };
            let ssl = if a.get("extaddr_ssl") == Some(&Value::Bool(true)) {
                " ssl"
            } else {
                ""
            };
            let _ = writeln!(
                c,
                "\tbind\t\t\t{ip}:{port} name {ip}:{port}{ssl} {}",
                s(fe, "advanced_bind")
            );
        }
        let mode = if s(fe, "type") == "http" {
            "http"
        } else {
            "tcp"
        };
        let _ = writeln!(c, "\tmode\t\t\t{mode}");
        let _ = writeln!(c, "\tlog\t\t\tglobal");
        let _ = writeln!(
            c,
            "\ttimeout client\t\t{}",
            n(fe, "client_timeout").unwrap_or(30000)
        );
        for line in s(fe, "advanced").lines() {
            let _ = writeln!(c, "\t{line}");
        }
        let pool = s(fe, "backend_serverpool");
        if !pool.is_empty() {
            let _ = writeln!(c, "\tdefault_backend {pool}_ipvANY");
        }
        let _ = writeln!(c);
    }

    // Like the package: a pool used by an `http` frontend is rendered in http mode.
    let http_pools: Vec<&str> = world
        .list(Collection::Frontends)
        .iter()
        .filter(|fe| s(fe, "type") == "http" && s(fe, "status") != "disabled")
        .map(|fe| s(fe, "backend_serverpool"))
        .collect();
    for be in world.list(Collection::Backends) {
        let mode = if http_pools.contains(&s(be, "name")) {
            "http"
        } else {
            "tcp"
        };
        render_backend(&mut c, be, mode, map)?;
    }
    Ok(c)
}

fn render_backend(c: &mut String, be: &Value, mode: &str, map: &AddrMap) -> Result<(), String> {
    let name = s(be, "name");
    let _ = writeln!(c, "backend {name}_ipvANY");
    let _ = writeln!(c, "\tmode\t\t\t{mode}");
    let balance = s(be, "balance");
    if !balance.is_empty() {
        let _ = writeln!(c, "\tbalance\t\t\t{balance}");
    }
    let _ = writeln!(c, "\tlog\t\t\tglobal");
    let _ = writeln!(
        c,
        "\ttimeout connect\t\t{}",
        n(be, "connection_timeout").unwrap_or(30000)
    );
    let _ = writeln!(
        c,
        "\ttimeout server\t\t{}",
        n(be, "server_timeout").unwrap_or(30000)
    );
    if let Some(r) = n(be, "retries") {
        let _ = writeln!(c, "\tretries\t\t\t{r}");
    }
    let _ = writeln!(c, "\tload-server-state-from-file\tglobal");
    let check = s(be, "check_type");
    match check {
        "HTTP" => {
            let _ = writeln!(c, "\toption httpchk");
            let method = match s(be, "httpcheck_method") {
                "" => "OPTIONS",
                m => m,
            };
            let uri = match s(be, "monitor_uri") {
                "" => "/",
                u => u,
            };
            let ver = match s(be, "monitor_httpversion") {
                "" => "HTTP/1.0",
                v => v,
            };
            let _ = writeln!(c, "\thttp-check send meth {method} uri {uri} ver {ver}");
        }
        "SSL" => {
            let _ = writeln!(c, "\toption ssl-hello-chk");
        }
        "MySQL" => {
            let _ = writeln!(c, "\toption mysql-check");
        }
        "PostgreSQL" => {
            let _ = writeln!(c, "\toption pgsql-check");
        }
        "Redis" => {
            let _ = writeln!(c, "\toption redis-check");
        }
        "SMTP" | "ESMTP" => {
            let _ = writeln!(c, "\toption smtpchk");
        }
        "LDAP" => {
            let _ = writeln!(c, "\toption ldap-check");
        }
        _ => {}
    }
    for line in s(be, "advanced_backend").lines() {
        let _ = writeln!(c, "\t{line}");
    }
    let servers = be
        .get("servers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for sv in &servers {
        let status = s(sv, "status");
        if status == "inactive" {
            continue;
        }
        let sname = s(sv, "name");
        let ip = map_loopback(map, s(sv, "address"))
            .map_err(|e| format!("backend {name} server {sname}: {e}"))?;
        let mut line = format!(
            "\tserver\t\t\t{sname} {ip}:{} id {}",
            s(sv, "port"),
            n(sv, "serverid").unwrap_or(0)
        );
        if sv.get("ssl") == Some(&Value::Bool(true)) {
            line.push_str(" ssl");
            if sv.get("sslserververify") == Some(&Value::Bool(true)) {
                line.push_str(" verify required");
            } else {
                line.push_str(" verify none");
            }
        }
        if check != "none" && !check.is_empty() {
            let inter = n(be, "checkinter").unwrap_or(1000);
            let _ = write!(line, " check inter {inter}");
        }
        let _ = write!(line, " weight {}", n(sv, "weight").unwrap_or(1));
        match status {
            "disabled" => line.push_str(" disabled"),
            "backup" => line.push_str(" backup"),
            _ => {}
        }
        for extra in [s(be, "advanced"), s(sv, "advanced")] {
            if !extra.trim().is_empty() {
                line.push(' ');
                line.push_str(extra.trim());
            }
        }
        let _ = writeln!(c, "{line}");
    }
    let _ = writeln!(c);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_pool_like_the_package_with_mapped_loopback_addresses() {
        let mut w = World::new();
        w.list_mut(Collection::Backends).push(json!({
            "name": "apiserver_nodes", "balance": "roundrobin", "check_type": "HTTP",
            "checkinter": 1000, "httpcheck_method": "GET", "monitor_uri": "/readyz",
            "advanced": "check-ssl verify none", "advanced_backend": "",
            "servers": [{"name": "k8s-master", "address": "10.0.20.100", "port": "6443",
                         "weight": 1, "ssl": false, "status": "disabled", "serverid": 101}]
        }));
        w.list_mut(Collection::Frontends).push(json!({
            "name": "apiserver_proxy_6443", "type": "tcp", "status": "active",
            "backend_serverpool": "apiserver_nodes",
            "a_extaddr": [{"extaddr": "custom", "extaddr_custom": "10.0.20.99", "extaddr_port": "6443"}]
        }));
        let map: AddrMap = "10.0.0.0/8=127.0.0.0/8".parse().unwrap();
        let paths = RenderPaths {
            socket: Path::new("/x/haproxy.socket"),
            state_file: Path::new("/x/state"),
        };
        let cfg = render(&w, &map, &paths).unwrap();
        assert!(cfg.contains("backend apiserver_nodes_ipvANY"), "{cfg}");
        assert!(
            cfg.contains("http-check send meth GET uri /readyz"),
            "{cfg}"
        );
        assert!(cfg.contains("k8s-master 127.0.20.100:6443 id 101 check inter 1000 weight 1 disabled check-ssl verify none"), "{cfg}");
        assert!(cfg.contains("bind\t\t\t127.0.20.99:6443"), "{cfg}");
        assert!(
            cfg.contains("default_backend apiserver_nodes_ipvANY"),
            "{cfg}"
        );
        assert!(cfg.contains("expose-fd listeners"), "{cfg}");
        assert!(cfg.contains("load-server-state-from-file\tglobal"), "{cfg}");

        let unmapped: AddrMap = "".parse().unwrap();
        let err = render(&w, &unmapped, &paths).unwrap_err();
        assert!(err.contains("refusing to use 10.0.20.99"), "{err}");
    }

    #[test]
    fn a_pool_behind_an_http_frontend_is_rendered_in_http_mode() {
        let mut w = World::new();
        w.list_mut(Collection::Backends)
            .push(json!({"name": "web", "check_type": "none", "servers": []}));
        w.list_mut(Collection::Frontends).push(json!({
            "name": "www", "type": "http", "status": "active", "backend_serverpool": "web",
            "a_extaddr": [{"extaddr": "localhost_ipv4", "extaddr_port": "8080"}]
        }));
        let paths = RenderPaths {
            socket: Path::new("/x/s"),
            state_file: Path::new("/x/st"),
        };
        let cfg = render(&w, &AddrMap::default(), &paths).unwrap();
        assert!(
            cfg.contains("backend web_ipvANY\n\tmode\t\t\thttp"),
            "{cfg}"
        );
    }
}
