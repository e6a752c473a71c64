//! The read-only `proxmox_template` kind: looks a template up by name in
//! `/cluster/resources` and reports its `vmid` and `node`, so a VM can clone it by
//! reference. Its schema is `read_only`: the engine never asks it to create, update or
//! delete (those refuse, should anything call them).

use async_trait::async_trait;
use cairn_core::kit::{Found, Kind, NoStep, Op, Query};
use cairn_core::{Resource, Schema};
use serde::{Deserialize, Serialize};

use crate::api;
use crate::error::Error;
use crate::provider::ProxmoxCtx;

/// A read-only lookup of a template by name: `vmid` and `node` are read from the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    /// The template's name.
    pub name: String,
    /// Its node (computed).
    pub node: Option<String>,
    /// Its VMID (computed).
    pub vmid: Option<u32>,
}

impl Template {
    /// Looks a template up by name.
    pub fn named(name: &str) -> Self {
        Template {
            name: name.into(),
            node: None,
            vmid: None,
        }
    }
}

cairn_core::attributes! {
    /// Typed accessors for references to a template lookup.
    pub trait TemplateRefs for Template {
        /// The template's VMID.
        fn template_vmid -> u32 = "vmid";
    }
}

impl Resource for Template {
    const KIND: &'static str = "proxmox_template";
    const PROVIDER: &'static str = "proxmox";

    fn key(&self) -> String {
        self.name.clone()
    }

    fn schema() -> Schema {
        Schema {
            computed: &["vmid", "node"],
            read_only: true,
            attributes: Self::ATTRIBUTES,
            ..Schema::default()
        }
    }
}

/// The `proxmox_template` kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct Templates;

#[async_trait]
impl Kind<ProxmoxCtx> for Templates {
    type Spec = Template;
    type Observed = Template;
    type Step = NoStep;

    /// The declared templates only: a lookup is never owned, so there is nothing else to
    /// report for the stack.
    async fn observe(&self, ctx: &ProxmoxCtx, q: Query<'_>) -> Result<Vec<Found<Template>>, Error> {
        if q.keys.is_empty() {
            return Ok(Vec::new());
        }
        let res = api::vm_resources(ctx.client()).await?;
        Ok(res
            .into_iter()
            .filter(|r| r.template)
            .filter_map(|r| {
                let name = r.name?;
                q.keys.contains(&name).then(|| {
                    let t = Template {
                        name: name.clone(),
                        node: Some(r.node),
                        vmid: Some(r.vmid),
                    };
                    Found::new(name, t, None)
                })
            })
            .collect())
    }

    async fn create(
        &self,
        _: &ProxmoxCtx,
        _: &Template,
        _: Op<'_, NoStep>,
    ) -> Result<Template, Error> {
        Err(Error::ReadOnly(Template::KIND))
    }

    async fn update(
        &self,
        _: &ProxmoxCtx,
        _: &Template,
        _: &Template,
        _: Op<'_, NoStep>,
    ) -> Result<Template, Error> {
        Err(Error::ReadOnly(Template::KIND))
    }

    async fn delete(&self, _: &ProxmoxCtx, _: &Template, _: Op<'_, NoStep>) -> Result<(), Error> {
        Err(Error::ReadOnly(Template::KIND))
    }

    fn example() -> Template {
        Template {
            name: "ubuntu-2404-cloudinit".into(),
            node: Some("pve".into()),
            vmid: Some(9000),
        }
    }
}
