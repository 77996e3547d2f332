"""Replication endpoints, rules, executions and the copier."""
