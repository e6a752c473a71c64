//! cairn provider for pfsense (work in progress).
