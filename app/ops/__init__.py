"""Operations: the deployment check, the JSON log line, the Prometheus metrics."""
