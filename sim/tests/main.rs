//! The one integration-test binary of the `twin` package (STYLE.md). Each area adds a module.

mod hpa;
mod lint;
mod mesh;
mod promql;
mod tidy;
