"""Forms of the scanning pages."""
