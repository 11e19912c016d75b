"""Operations: `appraise up` and its parts, the supervisor, the Prometheus and Alertmanager
config writer, and the alert webhook receiver."""
