
mod lint;
mod manifests;
