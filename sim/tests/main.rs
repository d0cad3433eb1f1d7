mod promql;
