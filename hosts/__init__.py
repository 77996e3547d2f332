"""Container hosts (Docker, VCH), their health and data collection, and containers."""
