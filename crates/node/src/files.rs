//! Files on a host, read and written through fixed remote scripts whose inputs are passed as
//! positional arguments (`sh -c SCRIPT sh ARG…`), so no path or value is ever part of shell
//! text. Reads are batched: one command reads every file a kind needs on a host.

use sha2::{Digest, Sha256};

use crate::error::NodeError;
use crate::ssh::{Cmd, Ssh};

/// One path as found on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteFile {
    /// A regular file and its content.
    File(Vec<u8>),
    /// Something that is not a regular file (`directory`, `fifo`, …).
    NotAFile(String),
    /// Nothing at that path.
    Missing,
}

/// Prints one line per path: `F <base64>`, `N <type>` or `M`.
const READ: &str = r#"for p do
  if [ -f "$p" ]; then printf 'F '; base64 -w0 -- "$p" || exit 3; echo
  elif [ -e "$p" ] || [ -L "$p" ]; then printf 'N %s\n' "$(stat -c %F -- "$p")"
  else echo M; fi
done"#;

/// Replaces a file atomically after checking it is still what was read: backup copy, new
/// content from stdin into a temporary file beside it (same mode and owner), rename. Then
/// writes the ownership marker the same way. `$6` = `1` when the content changes.
const WRITE: &str = r#"set -eu
p=$1 want=$2 bak=$3 mark=$4 marker=$5 content=$6
[ -f "$p" ] || { echo "$p is not a regular file" >&2; exit 3; }
have=$(sha256sum < "$p" | cut -d' ' -f1)
[ "$have" = "$want" ] || { echo "$p changed since it was read; not written" >&2; exit 4; }
if [ "$content" = 1 ]; then
  cp -p -- "$p" "$bak"
  tmp="$p.cairn-tmp.$$"
  cat > "$tmp"
  chmod --reference="$p" -- "$tmp"
  chown --reference="$p" -- "$tmp"
  mv -f -- "$tmp" "$p"
fi
printf '%s\n' "$marker" > "$mark.cairn-tmp.$$"
mv -f -- "$mark.cairn-tmp.$$" "$mark""#;

/// Reads `paths` on `host` as root in one command.
pub async fn read_files(
    ssh: &Ssh,
    host: &str,
    paths: &[String],
) -> Result<Vec<RemoteFile>, NodeError> {
    Ok(read_files_after(ssh, host, paths, "", 0).await?.1)
}

/// Reads `paths` on `host` as root in one command, after `before`: shell text run first
/// with the same `"$@"` (`paths`) that prints exactly `before_lines` lines, returned as printed.
pub async fn read_files_after(
    ssh: &Ssh,
    host: &str,
    paths: &[String],
    before: &str,
    before_lines: usize,
) -> Result<(Vec<String>, Vec<RemoteFile>), NodeError> {
    let cmd = Cmd::root("sh")
        .arg("-c")
        .arg(format!("{before}\n{READ}"))
        .arg("sh")
        .args(paths.iter().cloned());
    let out = ssh.run(host, &cmd).await?;
    let text = String::from_utf8_lossy(&out.stdout);
    let all: Vec<&str> = text.lines().collect();
    let Some((first, lines)) =
        (all.len() == before_lines + paths.len()).then(|| all.split_at(before_lines))
    else {
        return Err(NodeError::Command {
            host: host.into(),
            program: "sh (read files)".into(),
            status: 0,
            stderr: format!(
                "expected {} lines of output, got {}",
                before_lines + paths.len(),
                all.len()
            ),
        });
    };
    let first = first.iter().map(|l| l.to_string()).collect();
    lines
        .iter()
        .map(|l| match l.split_once(' ').unwrap_or((l, "")) {
            ("F", b64) => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map(RemoteFile::File)
                    .map_err(|e| NodeError::Command {
                        host: host.into(),
                        program: "sh (read files)".into(),
                        status: 0,
                        stderr: format!("unreadable output: {e}"),
                    })
            }
            ("N", what) => Ok(RemoteFile::NotAFile(what.trim().into())),
            _ => Ok(RemoteFile::Missing),
        })
        .collect::<Result<_, _>>()
        .map(|files| (first, files))
}

/// A replacement of one file, checked against what was read.
#[derive(Debug, Clone)]
pub struct Replace<'a> {
    /// The file.
    pub path: &'a str,
    /// Its content as read (the write is refused if it changed since).
    pub before: &'a [u8],
    /// The new content, or `None` to keep it and write only the marker.
    pub after: Option<&'a [u8]>,
    /// Where the backup goes.
    pub backup: &'a str,
    /// The ownership-marker file and its one line.
    pub marker: (&'a str, &'a str),
}

/// Replaces a file atomically with a backup, then writes its marker, in one command.
pub async fn replace(ssh: &Ssh, host: &str, r: Replace<'_>) -> Result<(), NodeError> {
    let cmd = Cmd::root("sh")
        .arg("-c")
        .arg(WRITE)
        .arg("sh")
        .arg(r.path)
        .arg(sha256_hex(r.before))
        .arg(r.backup)
        .arg(r.marker.0)
        .arg(r.marker.1)
        .arg(if r.after.is_some() { "1" } else { "0" })
        .stdin(r.after.unwrap_or_default().to_vec());
    ssh.run(host, &cmd).await.map(drop)
}

/// Lower-case hex SHA-256, as `sha256sum` prints it.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}
