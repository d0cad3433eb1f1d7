//! The one integration-test binary of the `twin` package (STYLE.md). Each area adds a module.

mod conformance;
mod export;
mod hpa;
mod html;
mod kube_state;
mod lint;
mod manifests;
mod mesh;
mod promql;
mod rules;
mod scenario;
mod schedule;
mod support;
mod tidy;
