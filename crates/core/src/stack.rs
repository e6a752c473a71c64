//! The stack builder: declare resources and gates, get typed handles back, add explicit
//! dependencies, protection and ignored fields; `build` validates the graph.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;

use crate::gate::{GateTiming, Probe};
use crate::resource::{FieldError, Handle, NodeRef, Resource, Schema};
use crate::spec::Spec;
use crate::value::Address;
use petgraph::algo::tarjan_scc;

/// The engine's hash maps: foldhash, randomly seeded (keys come from stack code and remote
/// names; SipHash cost a tenth of a large plan).
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
use petgraph::graph::DiGraph;

/// A declared resource, type-erased.
#[derive(Clone)]
pub struct ResourceDef {
    /// `kind.name`.
    pub address: Address,
    /// The kind name.
    pub kind: &'static str,
    /// The provider name.
    pub provider: &'static str,
    /// The natural key.
    pub key: String,
    /// The serialised spec (references as `$ref` markers), held once as compact JSON.
    pub spec: Spec,
    /// Schema facts of the kind.
    pub schema: Schema,
    /// Refuse any plan that would destroy this resource, or restart it unacknowledged.
    pub protect: bool,
    /// A protected resource may take changes that restart it (`Schema::restart` fields).
    pub restart_acknowledged: bool,
    /// Field path patterns whose differences are ignored.
    pub ignore_changes: Vec<String>,
    /// Problems the kind's own validation found.
    pub field_errors: Vec<FieldError>,
}

/// A declared gate.
#[derive(Clone)]
pub struct GateDef {
    /// `gate.name`.
    pub address: Address,
    /// What it waits for.
    pub probe: Arc<dyn Probe>,
    /// How often and how long.
    pub timing: GateTiming,
}

/// A node of the stack graph.
#[derive(Clone)]
pub enum NodeDef {
    /// A resource.
    Resource(Box<ResourceDef>),
    /// A gate.
    Gate(GateDef),
}

impl NodeDef {
    /// The node's address.
    pub fn address(&self) -> &Address {
        match self {
            NodeDef::Resource(r) => &r.address,
            NodeDef::Gate(g) => &g.address,
        }
    }
}

/// A handle to a declared gate, for `depends_on`.
#[derive(Debug, Clone)]
pub struct GateHandle(Address);

impl NodeRef for GateHandle {
    fn address(&self) -> &Address {
        &self.0
    }
}

/// Why a stack could not be built. Every variant names the resources involved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    /// Two nodes share an address.
    #[error("duplicate address {0}: declared twice")]
    DuplicateAddress(Address),
    /// Two resources of one kind share a key (they would be the same remote object).
    #[error(
        "{first} and {second} have the same {kind} key {key:?}: they would manage the same object"
    )]
    DuplicateKey {
        /// The kind.
        kind: String,
        /// The shared key.
        key: String,
        /// The first resource.
        first: Address,
        /// The second resource.
        second: Address,
    },
    /// A reference or `depends_on` points at a node that is not in the stack.
    #[error("{from} refers to {to} ({via}), which is not declared in this stack")]
    Dangling {
        /// The referring node.
        from: Address,
        /// The missing node.
        to: Address,
        /// The field path or `depends_on`.
        via: String,
    },
    /// The graph has a cycle.
    #[error("dependency cycle: {}", .0.iter().map(|a| a.0.as_str()).collect::<Vec<_>>().join(" -> "))]
    Cycle(Vec<Address>),
    /// Several problems at once.
    #[error("{} problems:\n  {}", .0.len(), .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n  "))]
    Many(Vec<BuildError>),
}

/// Declares a stack. Adding never fails; `build` reports every problem at once.
pub struct StackBuilder {
    name: String,
    nodes: Vec<NodeDef>,
    deps: Vec<Vec<(Address, String)>>,
    /// References found in each resource's spec (attribute references and references by
    /// key), as `(address, field path)`.
    refs: Vec<Vec<(Address, String)>>,
    index: FastMap<Address, usize>,
    errors: Vec<BuildError>,
    settings: BTreeMap<String, String>,
}

impl StackBuilder {
    /// Starts a stack; the name is written into ownership markers.
    pub fn new(name: impl Into<String>) -> Self {
        StackBuilder {
            name: name.into(),
            nodes: Vec::new(),
            deps: Vec::new(),
            refs: Vec::new(),
            index: FastMap::default(),
            errors: Vec::new(),
            settings: BTreeMap::new(),
        }
    }

    fn push(&mut self, node: NodeDef) -> Address {
        let address = node.address().clone();
        match self.index.entry(address.clone()) {
            std::collections::hash_map::Entry::Occupied(_) => {
                self.errors
                    .push(BuildError::DuplicateAddress(address.clone()));
                return address;
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(self.nodes.len());
            }
        }
        self.nodes.push(node);
        self.deps.push(Vec::new());
        self.refs.push(Vec::new());
        address
    }

    /// Declares a resource named `name` (unique per kind) and returns its typed handle.
    pub fn add<R: Resource>(&mut self, name: &str, spec: R) -> Handle<R> {
        let address = Address::new(R::KIND, name);
        let schema = R::schema();
        let (value, refs) = Spec::new(&spec, schema.sensitive);
        let key = spec.key();
        let handle = Handle::new(address.clone(), key.as_str());
        let def = ResourceDef {
            address: address.clone(),
            kind: R::KIND,
            provider: R::PROVIDER,
            key,
            spec: value,
            schema,
            protect: false,
            restart_acknowledged: false,
            ignore_changes: Vec::new(),
            field_errors: spec.validate(),
        };
        let before = self.nodes.len();
        self.push(NodeDef::Resource(Box::new(def)));
        if self.nodes.len() > before {
            // A reference to an attribute its kind does not have is this resource's field
            // error: the plan refuses it, naming resource and field, before observing. The
            // target is always declared earlier (its handle came from `add`), so the check
            // happens here and only the address and field are kept.
            let unknown: Vec<FieldError> = refs
                .iter()
                .filter_map(|(path, raw)| match self.index.get(&raw.address) {
                    Some(&j) => match &self.nodes[j] {
                        NodeDef::Resource(target) => unknown_attribute(target, path, &raw.attr),
                        _ => None,
                    },
                    None => None,
                })
                .collect();
            if let NodeDef::Resource(r) = &mut self.nodes[before] {
                r.field_errors.extend(unknown);
            }
            // References by key first: they stand where a hand-written `depends_on` stood.
            self.refs[before] = spec
                .key_refs()
                .into_iter()
                .map(|(path, to)| (to, path))
                .chain(refs.into_iter().map(|(path, raw)| (raw.address, path)))
                .collect();
        }
        handle
    }

    /// Declares a gate that waits for `probe` before its dependents run.
    pub fn gate(
        &mut self,
        name: &str,
        probe: impl Probe + 'static,
        timing: GateTiming,
    ) -> GateHandle {
        let address = Address::new("gate", name);
        self.push(NodeDef::Gate(GateDef {
            address: address.clone(),
            probe: Arc::new(probe),
            timing,
        }));
        GateHandle(address)
    }

    /// Makes `node` wait for `on` (in addition to edges derived from references).
    pub fn depends_on(&mut self, node: &impl NodeRef, on: &impl NodeRef) -> &mut Self {
        if let Some(&i) = self.index.get(node.address()) {
            self.deps[i].push((on.address().clone(), "depends_on".into()));
        }
        self
    }

    /// Refuses any plan that would destroy this resource (replace or delete).
    pub fn protect<R>(&mut self, handle: &Handle<R>) -> &mut Self {
        self.with_resource(handle.address(), |r| r.protect = true)
    }

    /// Lets a protected resource take changes that restart it (a server type change that
    /// shuts the server down, a VM memory change that needs a reboot). Without this, such a
    /// plan is refused like a replace; with it, the plan says the restart was acknowledged.
    pub fn acknowledge_restart<R>(&mut self, handle: &Handle<R>) -> &mut Self {
        self.with_resource(handle.address(), |r| r.restart_acknowledged = true)
    }

    /// Ignores differences in the given field paths (e.g. `labels`, `services[*].health_check`).
    pub fn ignore_changes<R>(&mut self, handle: &Handle<R>, paths: &[&str]) -> &mut Self {
        let paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
        self.with_resource(handle.address(), |r| r.ignore_changes.extend(paths))
    }

    /// How long one change (a provider's create, update or delete with its waits) may take
    /// during apply before it fails and its dependents are skipped. Default: 30 minutes.
    pub fn change_timeout(&mut self, timeout: std::time::Duration) -> &mut Self {
        self.setting(CHANGE_TIMEOUT_SETTING, timeout.as_millis().to_string())
    }

    /// Deletes adopted objects whose declaration disappears, instead of releasing them (the
    /// default: remove cairn's marker, leave the object). The plan says which it does.
    pub fn delete_adopted_when_undeclared(&mut self) -> &mut Self {
        self.setting(crate::planner::DELETE_ADOPTED_SETTING, "true")
    }

    /// Sets a stack setting that providers' plan checks read (e.g. `proxmox.memory_ratio`).
    pub fn setting(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.settings.insert(key.to_string(), value.into());
        self
    }

    fn with_resource(&mut self, address: &Address, f: impl FnOnce(&mut ResourceDef)) -> &mut Self {
        if let Some(&i) = self.index.get(address)
            && let NodeDef::Resource(r) = &mut self.nodes[i]
        {
            f(r);
        }
        self
    }

    /// Validates and freezes the stack: no duplicate address or key, every reference and
    /// `depends_on` inside the stack, no cycle.
    pub fn build(mut self) -> Result<Stack, BuildError> {
        let mut errors = std::mem::take(&mut self.errors);
        let mut keys: FastMap<(&str, &str), &Address> = FastMap::default();
        keys.reserve(self.nodes.len());
        for node in &self.nodes {
            if let NodeDef::Resource(r) = node
                && let Some(first) = keys.insert((r.kind, r.key.as_str()), &r.address)
            {
                errors.push(BuildError::DuplicateKey {
                    kind: r.kind.to_string(),
                    key: r.key.clone(),
                    first: first.clone(),
                    second: r.address.clone(),
                });
            }
        }
        let mut deps: Vec<Vec<usize>> = vec![Vec::new(); self.nodes.len()];
        for (i, node) in self.nodes.iter().enumerate() {
            let refs = std::mem::take(&mut self.refs[i]);
            for (to, via) in std::mem::take(&mut self.deps[i]).into_iter().chain(refs) {
                match self.index.get(&to) {
                    Some(&j) if !deps[i].contains(&j) => deps[i].push(j),
                    Some(_) => {}
                    None => errors.push(BuildError::Dangling {
                        from: node.address().clone(),
                        to,
                        via,
                    }),
                }
            }
        }
        // A graph is acyclic exactly when the topological walk reaches every node; only a
        // cyclic one pays for finding the cycle.
        let order = topo_order(&deps);
        if errors.is_empty()
            && order.len() < deps.len()
            && let Some(cycle) = find_cycle(&deps)
        {
            errors.push(BuildError::Cycle(
                cycle
                    .into_iter()
                    .map(|i| self.nodes[i].address().clone())
                    .collect(),
            ));
        }
        match errors.len() {
            0 => Ok(Stack {
                name: self.name,
                nodes: self.nodes,
                deps,
                order,
                settings: self.settings,
                index: self.index,
            }),
            1 => Err(errors.remove(0)),
            _ => Err(BuildError::Many(errors)),
        }
    }
}

/// The field error for a reference at `field` to `attr` of `target`, when `target`'s kind
/// declares its attributes and `attr` is not one of them.
fn unknown_attribute(target: &ResourceDef, field: &str, attr: &str) -> Option<FieldError> {
    let known = target.schema.attributes;
    if known.is_empty() || known.iter().any(|k| attribute_matches(k, attr)) {
        return None;
    }
    Some(FieldError::new(
        field,
        format!(
            "refers to attribute {attr:?} of {}, which a {} does not have (its attributes: {})",
            target.address,
            target.kind,
            known.join(", ")
        ),
    ))
}

/// Whether `attr` is the declared attribute path `declared`, where a `*` segment stands for
/// any one segment (`networks.*.macaddr` declares `networks.net0.macaddr`).
pub(crate) fn attribute_matches(declared: &str, attr: &str) -> bool {
    let mut d = declared.split('.');
    let mut a = attr.split('.');
    loop {
        match (d.next(), a.next()) {
            (None, None) => return true,
            (Some("*"), Some(_)) => {}
            (Some(x), Some(y)) if x == y => {}
            _ => return false,
        }
    }
}

/// Finds one cycle, as a closed path `a -> b -> … -> a`, if the graph has any.
fn find_cycle(deps: &[Vec<usize>]) -> Option<Vec<usize>> {
    let mut g = DiGraph::<usize, ()>::new();
    let idx: Vec<_> = (0..deps.len()).map(|i| g.add_node(i)).collect();
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            g.add_edge(idx[i], idx[d], ());
        }
    }
    let scc = tarjan_scc(&g)
        .into_iter()
        .find(|c| c.len() > 1 || deps[c[0].index()].contains(&c[0].index()))?;
    let members: Vec<usize> = scc.iter().map(|n| n.index()).collect();
    // Walk inside the component until a node repeats; that loop is a cycle.
    let start = *members.iter().min()?;
    let mut path = vec![start];
    let mut cur = start;
    loop {
        let next = *deps[cur].iter().filter(|d| members.contains(d)).min()?;
        if let Some(pos) = path.iter().position(|&p| p == next) {
            let mut cycle = path[pos..].to_vec();
            cycle.push(next);
            return Some(cycle);
        }
        path.push(next);
        cur = next;
    }
}

/// The setting that holds the change timeout, in milliseconds.
const CHANGE_TIMEOUT_SETTING: &str = "cairn.change_timeout_ms";
/// The change timeout unless a stack sets one.
const DEFAULT_CHANGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// A validated stack: nodes, their dependencies, a topological order and settings.
#[derive(Clone)]
pub struct Stack {
    name: String,
    nodes: Vec<NodeDef>,
    deps: Vec<Vec<usize>>,
    order: Vec<usize>,
    settings: BTreeMap<String, String>,
    index: FastMap<Address, usize>,
}

impl Stack {
    /// The stack's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// All nodes, in declaration order.
    pub fn nodes(&self) -> &[NodeDef] {
        &self.nodes
    }

    /// Indexes of the nodes node `i` depends on.
    pub fn deps(&self, i: usize) -> &[usize] {
        &self.deps[i]
    }

    /// Node indexes in an order where dependencies come first.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// Stack settings for plan checks.
    pub fn settings(&self) -> &BTreeMap<String, String> {
        &self.settings
    }

    /// How long one change may take during apply ([`StackBuilder::change_timeout`]).
    pub fn change_timeout(&self) -> std::time::Duration {
        self.settings
            .get(CHANGE_TIMEOUT_SETTING)
            .and_then(|v| v.parse().ok())
            .map_or(DEFAULT_CHANGE_TIMEOUT, std::time::Duration::from_millis)
    }

    /// The declared resources.
    pub fn resources(&self) -> impl Iterator<Item = &ResourceDef> {
        self.nodes.iter().filter_map(|n| match n {
            NodeDef::Resource(r) => Some(r.as_ref()),
            NodeDef::Gate(_) => None,
        })
    }

    /// The index of the node at `address`.
    pub fn index_of(&self, address: &Address) -> Option<usize> {
        self.index.get(address).copied()
    }
}

/// Kahn's algorithm with declaration order as the tie-break (stable, deterministic).
fn topo_order(deps: &[Vec<usize>]) -> Vec<usize> {
    let n = deps.len();
    let mut indegree: Vec<usize> = deps.iter().map(Vec::len).collect();
    // Dependents as one flat list: node d's are `flat[start[d]..start[d + 1]]`.
    let mut start = vec![0usize; n + 1];
    for &d in deps.iter().flatten() {
        start[d + 1] += 1;
    }
    for i in 0..n {
        start[i + 1] += start[i];
    }
    let mut fill = start.clone();
    let mut flat = vec![0usize; start[n]];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            flat[fill[d]] = i;
            fill[d] += 1;
        }
    }
    let dependents = |d: usize| &flat[start[d]..start[d + 1]];
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| indegree[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &d in dependents(i) {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                ready.push(Reverse(d));
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::attribute_matches;

    #[test]
    fn a_star_segment_declares_any_one_segment_and_nothing_else_matches() {
        assert!(attribute_matches("ipv4", "ipv4"));
        assert!(attribute_matches(
            "networks.*.macaddr",
            "networks.net0.macaddr"
        ));
        assert!(!attribute_matches("networks.*.macaddr", "networks.macaddr"));
        assert!(!attribute_matches(
            "networks.*.macaddr",
            "networks.net0.macaddr.x"
        ));
        assert!(!attribute_matches("ipv4", "public_net.ipv4"));
        assert!(!attribute_matches("public_net", "public_net.ipv4"));
    }
}
