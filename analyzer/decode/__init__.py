"""faultlens.analyzer.decode."""
