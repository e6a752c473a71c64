//! The typed values of a VM spec, each serialised with the Proxmox API's spelling so that
//! specs, plans and ownership trailers read exactly as the strings they replaced: the clone
//! mode (the clone call's `full` flag), the NIC model (`virtio`, …) and the disk slot
//! (`scsi0`: a bus and an index).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How a clone shares storage with its template. Serialised as the clone call's `full`
/// flag (`true` = full), which is how specs and ownership trailers have always held it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CloneMode {
    /// A linked clone: the disks are thin copies on top of the template's base image.
    #[default]
    Linked,
    /// A full clone: the disks are copied and owned outright.
    Full,
}

impl CloneMode {
    /// The API's `full` flag.
    pub fn is_full(self) -> bool {
        self == CloneMode::Full
    }
}

impl fmt::Display for CloneMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CloneMode::Linked => "linked",
            CloneMode::Full => "full",
        })
    }
}

impl Serialize for CloneMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(self.is_full())
    }
}

impl<'de> Deserialize<'de> for CloneMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(if bool::deserialize(d)? {
            CloneMode::Full
        } else {
            CloneMode::Linked
        })
    }
}

/// A NIC model, spelled as in the `netN` property string (`virtio=…,bridge=…`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NicModel {
    /// `virtio` (paravirtualised; the default).
    #[default]
    Virtio,
    /// `e1000`.
    E1000,
    /// `e1000e`.
    E1000e,
    /// `rtl8139`.
    Rtl8139,
    /// `vmxnet3`.
    Vmxnet3,
    /// A model cairn does not manage (observed on a hand-made VM); refused in specs.
    Other(String),
}

impl NicModel {
    /// The models cairn manages.
    pub const KNOWN: [NicModel; 5] = [
        NicModel::Virtio,
        NicModel::E1000,
        NicModel::E1000e,
        NicModel::Rtl8139,
        NicModel::Vmxnet3,
    ];

    /// The API's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            NicModel::Virtio => "virtio",
            NicModel::E1000 => "e1000",
            NicModel::E1000e => "e1000e",
            NicModel::Rtl8139 => "rtl8139",
            NicModel::Vmxnet3 => "vmxnet3",
            NicModel::Other(m) => m,
        }
    }

    /// The known model spelled `s`, if any.
    pub fn known(s: &str) -> Option<NicModel> {
        Self::KNOWN.into_iter().find(|m| m.as_str() == s)
    }
}

impl From<&str> for NicModel {
    fn from(s: &str) -> Self {
        NicModel::known(s).unwrap_or_else(|| NicModel::Other(s.to_string()))
    }
}

impl fmt::Display for NicModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for NicModel {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for NicModel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(NicModel::from(String::deserialize(d)?.as_str()))
    }
}

/// A disk bus, spelled as the prefix of its config key (`scsi0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiskBus {
    /// `scsiN`.
    Scsi,
    /// `virtioN`.
    Virtio,
    /// `sataN`.
    Sata,
    /// `ideN`.
    Ide,
    /// `efidiskN` (observed only: not a data disk a spec may declare).
    Efidisk,
    /// `tpmstateN` (observed only).
    Tpmstate,
}

impl DiskBus {
    const ALL: [DiskBus; 6] = [
        DiskBus::Scsi,
        DiskBus::Virtio,
        DiskBus::Sata,
        DiskBus::Ide,
        DiskBus::Efidisk,
        DiskBus::Tpmstate,
    ];

    /// The API's spelling (the config key prefix).
    pub fn as_str(self) -> &'static str {
        match self {
            DiskBus::Scsi => "scsi",
            DiskBus::Virtio => "virtio",
            DiskBus::Sata => "sata",
            DiskBus::Ide => "ide",
            DiskBus::Efidisk => "efidisk",
            DiskBus::Tpmstate => "tpmstate",
        }
    }

    /// Whether a spec may declare a disk on this bus (data disks only).
    pub fn is_data(self) -> bool {
        matches!(
            self,
            DiskBus::Scsi | DiskBus::Virtio | DiskBus::Sata | DiskBus::Ide
        )
    }
}

/// A disk slot: bus and index, written as the config key (`scsi0`, `virtio1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DiskSlot {
    /// The bus.
    pub bus: DiskBus,
    /// The index on the bus.
    pub index: u32,
}

impl DiskSlot {
    /// `scsiN`.
    pub fn scsi(index: u32) -> Self {
        DiskSlot {
            bus: DiskBus::Scsi,
            index,
        }
    }

    /// `virtioN`.
    pub fn virtio(index: u32) -> Self {
        DiskSlot {
            bus: DiskBus::Virtio,
            index,
        }
    }
}

impl fmt::Display for DiskSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.bus.as_str(), self.index)
    }
}

/// A config key that is not a disk slot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a disk slot (scsiN, virtioN, sataN, ideN, efidiskN, tpmstateN)")]
pub struct NotADiskSlot(pub String);

impl FromStr for DiskSlot {
    type Err = NotADiskSlot;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DiskBus::ALL
            .into_iter()
            .find_map(|bus| {
                let index = s.strip_prefix(bus.as_str())?.parse::<u32>().ok()?;
                // `scsi00` would not print back as itself.
                (format!("{}{index}", bus.as_str()) == s).then_some(DiskSlot { bus, index })
            })
            .ok_or_else(|| NotADiskSlot(s.to_string()))
    }
}

/// Slots sort as their config keys do (`scsi10` before `scsi2`), so maps keyed by slot
/// serialise in the same order as the string-keyed maps they replaced.
impl Ord for DiskSlot {
    fn cmp(&self, other: &Self) -> Ordering {
        self.to_string().cmp(&other.to_string())
    }
}

impl PartialOrd for DiskSlot {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Serialize for DiskSlot {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DiskSlot {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}
