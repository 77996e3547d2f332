"""The vulnerability scanner: indexer, vulnerability database, matcher, scan jobs."""
