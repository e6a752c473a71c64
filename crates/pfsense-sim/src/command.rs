//! `POST /api/v2/diagnostics/command_prompt`: the simulator runs only HAProxy runtime API
//! commands piped to the stats socket (`echo "show servers state" | socat stdio
//! /tmp/haproxy.socket`) and the package's config check (`haproxy -c -f …`); it refuses
//! everything else.

/// What a shell command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A runtime API command for the stats socket.
    Runtime(String),
    /// `haproxy -c -f <file>`: check the configuration that the next apply would load.
    CheckConfig,
}

/// Runtime commands the simulator passes to HAProxy.
const ALLOWED: &[&str] = &[
    "show servers state",
    "show stat",
    "show info",
    "show servers conn",
];

/// Parses a command line; `Err` explains why it is refused.
pub fn parse(line: &str) -> Result<Command, String> {
    let line = line.trim();
    if let Some(rest) = line.strip_prefix("haproxy ")
        && rest.split_whitespace().any(|w| w == "-c")
    {
        return Ok(Command::CheckConfig);
    }
    let (left, right) = line
        .split_once('|')
        .ok_or_else(|| refuse(line, "not an `echo \"…\" | socat` HAProxy runtime command"))?;
    let right = right.trim_start();
    if !(right.starts_with("socat ") || right.starts_with("nc -U ")) {
        return Err(refuse(
            line,
            "only `socat` or `nc -U` to the HAProxy stats socket is supported",
        ));
    }
    let inner = left
        .trim()
        .strip_prefix("echo")
        .ok_or_else(|| refuse(line, "expected `echo \"<runtime command>\"`"))?
        .trim();
    let inner = inner
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .or_else(|| inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
        .unwrap_or(inner)
        .trim();
    if ALLOWED.iter().any(|a| inner.starts_with(a)) || is_set_server(inner) {
        Ok(Command::Runtime(inner.to_string()))
    } else {
        Err(refuse(line, "runtime command not allowed"))
    }
}

fn is_set_server(cmd: &str) -> bool {
    let words: Vec<&str> = cmd.split_whitespace().collect();
    match words.as_slice() {
        ["set", "server", target, "state", state] => {
            target.contains('/') && ["ready", "drain", "maint"].contains(state)
        }
        ["set", "server", target, "weight", w] => target.contains('/') && w.parse::<u32>().is_ok(),
        _ => false,
    }
}

fn refuse(line: &str, why: &str) -> String {
    format!(
        "the pfSense simulator refuses {line:?}: {why}; allowed: `echo \"show servers state|show stat|show info|set server <backend>/<server> state ready|drain|maint\" | socat stdio /tmp/haproxy.socket` and `haproxy -c -f <cfg>`"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_commands_are_extracted_and_others_refused() {
        assert_eq!(
            parse(r#"echo "show servers state pool_ipvANY" | socat stdio /tmp/haproxy.socket"#),
            Ok(Command::Runtime("show servers state pool_ipvANY".into()))
        );
        assert_eq!(
            parse("echo 'set server p_ipvANY/web-2 state drain' | socat stdio /tmp/haproxy.socket"),
            Ok(Command::Runtime(
                "set server p_ipvANY/web-2 state drain".into()
            ))
        );
        assert_eq!(
            parse("haproxy -c -f /var/etc/haproxy_test/haproxy.cfg"),
            Ok(Command::CheckConfig)
        );
        assert!(parse("rm -rf /").is_err());
        assert!(parse(r#"echo "shutdown frontend x" | socat stdio /tmp/haproxy.socket"#).is_err());
        assert!(parse(r#"echo "show stat" | sh"#).is_err());
        assert!(parse(r#"echo "set server a/b state up" | socat stdio /tmp/x"#).is_err());
        assert_eq!(
            parse(r#"echo "show stat" | nc -U /tmp/haproxy.socket"#),
            Ok(Command::Runtime("show stat".into()))
        );
    }
}
