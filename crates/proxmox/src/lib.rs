//! cairn provider for proxmox (work in progress).
