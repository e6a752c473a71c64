//! Parsing of HAProxy runtime API answers: `show servers state` and `show stat`.

/// One line of `show servers state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerState {
    /// Backend name as HAProxy knows it (`<pool>_ipvANY`).
    pub backend: String,
    /// Server name.
    pub server: String,
    /// `srv_op_state`: 0 stopped, 1 starting, 2 running (UP), 3 stopping.
    pub op_state: u32,
    /// `srv_admin_state` bit field (0x01 forced maint, 0x04 config maint, 0x08 forced drain…).
    pub admin_state: u32,
    /// `srv_check_result`: 0 unknown, 1 neutral, 2 failed, 3 passed, 4 conditionally passed.
    pub check_result: u32,
}

impl ServerState {
    /// UP and its last health check passed: safe to send traffic to.
    pub fn check_passed(&self) -> bool {
        self.op_state == 2 && self.check_result == 3
    }

    /// In maintenance (forced or by configuration).
    pub fn in_maint(&self) -> bool {
        self.admin_state & (0x01 | 0x02 | 0x04) != 0
    }
}

/// Parses `show servers state` (format version 1).
pub fn parse_servers_state(text: &str) -> Vec<ServerState> {
    let mut header: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(h) = line.strip_prefix('#') {
            header = h.split_whitespace().collect();
            continue;
        }
        if header.is_empty() || line.is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split_whitespace().collect();
        let get = |name: &str| {
            header
                .iter()
                .position(|h| *h == name)
                .and_then(|i| cols.get(i))
                .copied()
                .unwrap_or("")
        };
        let num = |name: &str| get(name).parse().unwrap_or(0);
        out.push(ServerState {
            backend: get("be_name").to_string(),
            server: get("srv_name").to_string(),
            op_state: num("srv_op_state"),
            admin_state: num("srv_admin_state"),
            check_result: num("srv_check_result"),
        });
    }
    out
}

/// One row of `show stat` (selected columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatRow {
    /// Proxy name.
    pub proxy: String,
    /// Server name (`FRONTEND`/`BACKEND` for the aggregate rows).
    pub server: String,
    /// Current sessions.
    pub scur: u64,
    /// Total sessions.
    pub stot: u64,
    /// `UP`, `DOWN`, `MAINT`, `DRAIN`, `no check`…
    pub status: String,
}

/// Parses the `show stat` CSV.
pub fn parse_stat(text: &str) -> Vec<StatRow> {
    let mut lines = text.lines();
    let Some(header) = lines.next().and_then(|h| h.strip_prefix("# ")) else {
        return Vec::new();
    };
    let cols: Vec<&str> = header.split(',').collect();
    let idx = |n: &str| cols.iter().position(|c| *c == n);
    let (px, sv, scur, stot, status) = (
        idx("pxname"),
        idx("svname"),
        idx("scur"),
        idx("stot"),
        idx("status"),
    );
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let at = |i: Option<usize>| i.and_then(|i| f.get(i)).copied().unwrap_or("");
            StatRow {
                proxy: at(px).to_string(),
                server: at(sv).to_string(),
                scur: at(scur).parse().unwrap_or(0),
                stot: at(stot).parse().unwrap_or(0),
                status: at(status).to_string(),
            }
        })
        .collect()
}

/// Whether `name` is safe as a HAProxy pool or server name: 1-63 ASCII letters, digits,
/// `_`, `-`, `.` or `:`. Runtime commands travel through pfSense's shell
/// (`/diagnostics/command_prompt`), so nothing else is ever put into one — not a declared
/// name (refused at plan time) and not an observed one (the command is refused).
pub fn safe_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
}

/// The message for a name that fails [`safe_name`].
pub const SAFE_NAME_RULE: &str = "must be 1-63 ASCII letters, digits, `_`, `-`, `.` or `:` (names reach HAProxy's runtime API through a shell)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_state_columns_are_read_by_name() {
        let text = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result\n2 b_ipvANY 101 s1 127.0.30.1 2 12 1 1 3 15 3\n2 b_ipvANY 102 s2 127.0.30.2 0 0 1 1 3 15 2\n";
        let s = parse_servers_state(text);
        assert_eq!(s.len(), 2);
        assert!(s[0].check_passed() && s[0].in_maint());
        assert!(!s[1].check_passed() && !s[1].in_maint());
    }

    #[test]
    fn stat_csv_reads_sessions_and_status() {
        let text = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status\nb_ipvANY,s1,0,0,3,4,,10,0,0,,0,,0,0,0,0,DRAIN\n";
        let r = parse_stat(text);
        assert_eq!(r[0].scur, 3);
        assert_eq!(r[0].stot, 10);
        assert_eq!(r[0].status, "DRAIN");
    }
}
