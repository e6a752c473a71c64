//! cairn provider for hetzner (work in progress).
