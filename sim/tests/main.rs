
mod manifests;
