//! The one integration-test binary of the `twin` package (STYLE.md). Each area adds a module.

mod conformance;
mod hpa;
mod lint;
mod manifests;
mod mesh;
mod promql;
mod rules;
mod scenario;
mod schedule;
mod tidy;
