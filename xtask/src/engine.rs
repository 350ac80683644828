//! The container engine: probes docker or podman and what it offers (BuildKit), builds images, runs containers.
