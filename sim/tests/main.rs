mod promql;
mod rules;
