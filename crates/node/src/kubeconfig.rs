//! Reading and editing the `server` of a kubeconfig with a YAML parser: the cluster is the
//! one the current context uses (or the only one), and an edit replaces exactly the bytes of
//! that scalar, so comments, order and formatting of everything else stay as they were. Each
//! edit is verified by parsing the result and comparing it with the original document.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};
use yaml_rust2::{Yaml, YamlLoader};

/// Where the server URL of the active cluster sits in a kubeconfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerField {
    /// The cluster's name.
    pub cluster: String,
    /// The server URL.
    pub server: String,
    start: usize,
    end: usize,
    style: TScalarStyle,
}

/// A YAML node with the source position of scalars.
#[derive(Debug)]
enum Node {
    Scalar(String, TScalarStyle, usize),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
    Other,
}

impl Node {
    fn str(&self) -> Option<&str> {
        match self {
            Node::Scalar(s, ..) => Some(s),
            _ => None,
        }
    }

    fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(kv) => kv
                .iter()
                .find(|(k, _)| k.str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    fn items(&self) -> &[Node] {
        match self {
            Node::Seq(v) => v,
            _ => &[],
        }
    }
}

#[derive(Default)]
struct Builder {
    stack: Vec<(Node, Option<Node>)>,
    root: Option<Node>,
}

impl Builder {
    fn push(&mut self, n: Node) {
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(n);
                }
            }
            Some((Node::Seq(v), _)) => v.push(n),
            Some((Node::Map(kv), pending)) => match pending.take() {
                None => *pending = Some(n),
                Some(k) => kv.push((k, n)),
            },
            Some(_) => {}
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(v, style, ..) => self.push(Node::Scalar(v, style, mark.index())),
            Event::Alias(_) => self.push(Node::Other),
            Event::SequenceStart(..) => self.stack.push((Node::Seq(Vec::new()), None)),
            Event::MappingStart(..) => self.stack.push((Node::Map(Vec::new()), None)),
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((n, _)) = self.stack.pop() {
                    self.push(n);
                }
            }
            _ => {}
        }
    }
}

fn parse(text: &str) -> Result<Node, String> {
    let mut b = Builder::default();
    Parser::new_from_str(text)
        .load(&mut b, false)
        .map_err(|e| format!("not valid YAML: {e}"))?;
    b.root.ok_or_else(|| "empty document".to_string())
}

/// Finds the server of the cluster the current context uses (or of the only cluster).
pub fn find_server(text: &str) -> Result<ServerField, String> {
    let root = parse(text)?;
    let clusters = root
        .get("clusters")
        .map(Node::items)
        .filter(|c| !c.is_empty())
        .ok_or("no clusters in the kubeconfig")?;
    let wanted = match root.get("current-context").and_then(Node::str) {
        Some(ctx) if !ctx.is_empty() => Some(
            root.get("contexts")
                .map(Node::items)
                .unwrap_or_default()
                .iter()
                .find(|c| c.get("name").and_then(Node::str) == Some(ctx))
                .and_then(|c| c.get("context")?.get("cluster")?.str())
                .ok_or_else(|| format!("current context {ctx:?} names no cluster"))?,
        ),
        _ => None,
    };
    let cluster = match wanted {
        Some(name) => clusters
            .iter()
            .find(|c| c.get("name").and_then(Node::str) == Some(name))
            .ok_or_else(|| format!("cluster {name:?} of the current context is not defined"))?,
        None if clusters.len() == 1 => &clusters[0],
        None => return Err("several clusters and no current context".into()),
    };
    let name = cluster.get("name").and_then(Node::str).unwrap_or_default();
    let Some(Node::Scalar(server, style, start)) =
        cluster.get("cluster").and_then(|c| c.get("server"))
    else {
        return Err(format!("cluster {name:?} has no server"));
    };
    let end = scalar_end(text, *start, server, *style)
        .ok_or_else(|| format!("cluster {name:?}: the server value has a form this edit does not handle (block or multi-line scalar)"))?;
    Ok(ServerField {
        cluster: name.to_string(),
        server: server.clone(),
        start: *start,
        end,
        style: *style,
    })
}

/// Returns `text` with only the active cluster's server replaced by `server`.
pub fn set_server(text: &str, server: &str) -> Result<String, String> {
    let field = find_server(text)?;
    let replacement = match field.style {
        TScalarStyle::Plain if plain_safe(server) => server.to_string(),
        TScalarStyle::SingleQuoted => format!("'{}'", server.replace('\'', "''")),
        _ => serde_json::to_string(server).expect("a string serialises"),
    };
    let mut out = String::with_capacity(text.len() + replacement.len());
    out.push_str(&text[..field.start]);
    out.push_str(&replacement);
    out.push_str(&text[field.end..]);
    verify(text, &out, &field.cluster, server)?;
    Ok(out)
}

/// The byte just past the scalar that starts at `start`.
fn scalar_end(text: &str, start: usize, value: &str, style: TScalarStyle) -> Option<usize> {
    let rest = text.get(start..)?;
    match style {
        TScalarStyle::Plain => rest.starts_with(value).then_some(start + value.len()),
        TScalarStyle::SingleQuoted => {
            let b = rest.as_bytes();
            let mut i = 1;
            while i < b.len() {
                if b[i] == b'\'' {
                    if b.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    return Some(start + i + 1);
                }
                i += 1;
            }
            None
        }
        TScalarStyle::DoubleQuoted => {
            let b = rest.as_bytes();
            let mut i = 1;
            while i < b.len() {
                match b[i] {
                    b'\\' => i += 2,
                    b'"' => return Some(start + i + 1),
                    _ => i += 1,
                }
            }
            None
        }
        _ => None,
    }
}

/// Whether `s` reads back as the same string when written as a plain scalar.
fn plain_safe(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || ":/._-[]".contains(c))
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && !s.contains(": ")
        // YAML 1.1 readers (kubelet's among them) take these for booleans or null.
        && !["y", "n", "yes", "no", "on", "off", "true", "false", "null"]
            .contains(&s.to_ascii_lowercase().as_str())
        && matches!(YamlLoader::load_from_str(s).ok().as_deref(), Some([Yaml::String(v)]) if v == s)
}

/// Checks that `after` is `before` with exactly the cluster's server changed to `server`.
fn verify(before: &str, after: &str, cluster: &str, server: &str) -> Result<(), String> {
    let load = |t: &str| YamlLoader::load_from_str(t).map_err(|e| e.to_string());
    let mut want = load(before)?;
    let got = load(after).map_err(|e| format!("the edited kubeconfig does not parse: {e}"))?;
    let set = want.first_mut().and_then(|doc| {
        let Yaml::Hash(root) = doc else { return None };
        let Yaml::Array(clusters) = root.get_mut(&Yaml::String("clusters".into()))? else {
            return None;
        };
        let c = clusters
            .iter_mut()
            .find(|c| c["name"].as_str() == Some(cluster))?;
        let Yaml::Hash(c) = c else { return None };
        let Yaml::Hash(inner) = c.get_mut(&Yaml::String("cluster".into()))? else {
            return None;
        };
        *inner.get_mut(&Yaml::String("server".into()))? = Yaml::String(server.into());
        Some(())
    });
    if set.is_none() || want != got {
        return Err("refusing the edit: it would change more than the server field".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBELET_CONF: &str = "apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTg==
    server: https://10.0.20.100:6443
  name: default-cluster
contexts:
- context:
    cluster: default-cluster
    namespace: default
    user: default-auth
  name: default-context
current-context: default-context
kind: Config
preferences: {}
users:
- name: default-auth
  user:
    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem
    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem
";

    #[test]
    fn the_server_of_the_current_context_is_found() {
        let f = find_server(KUBELET_CONF).unwrap();
        assert_eq!(f.server, "https://10.0.20.100:6443");
        assert_eq!(f.cluster, "default-cluster");
    }

    #[test]
    fn an_edit_changes_only_the_server_bytes() {
        let out = set_server(KUBELET_CONF, "https://10.0.20.99:6443").unwrap();
        assert_eq!(
            out,
            KUBELET_CONF.replace("https://10.0.20.100:6443", "https://10.0.20.99:6443")
        );
    }

    #[test]
    fn quoted_servers_keep_their_quotes_and_comments_survive() {
        let text = "# managed by hand\nclusters:\n- name: a # the only one\n  cluster: {server: \"https://old:6443\", x: 1}\n";
        let out = set_server(text, "https://new:6443").unwrap();
        assert_eq!(
            out,
            text.replace("\"https://old:6443\"", "\"https://new:6443\"")
        );
        let single = "clusters:\n- name: a\n  cluster:\n    server: 'https://old:6443'\n";
        assert_eq!(
            set_server(single, "https://it's:1").unwrap(),
            "clusters:\n- name: a\n  cluster:\n    server: 'https://it''s:1'\n"
        );
    }

    #[test]
    fn a_value_that_would_not_read_back_plain_is_quoted() {
        let out = set_server(KUBELET_CONF, "yes").unwrap();
        assert!(out.contains("server: \"yes\""), "{out}");
        assert_eq!(find_server(&out).unwrap().server, "yes");
    }

    #[test]
    fn ambiguous_or_broken_kubeconfigs_are_explained() {
        let two =
            "clusters:\n- name: a\n  cluster: {server: x}\n- name: b\n  cluster: {server: y}\n";
        assert_eq!(
            find_server(two).unwrap_err(),
            "several clusters and no current context"
        );
        assert!(
            find_server("clusters: [")
                .unwrap_err()
                .starts_with("not valid YAML")
        );
        assert_eq!(
            find_server("kind: Config\n").unwrap_err(),
            "no clusters in the kubeconfig"
        );
    }
}
