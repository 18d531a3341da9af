"""faultlens.analyzer.store."""
