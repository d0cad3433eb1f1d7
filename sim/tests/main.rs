//! The one integration-test binary of the `twin` package (STYLE.md). Each area adds a module.

mod hpa;
mod promql;
mod tidy;
