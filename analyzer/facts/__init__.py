"""faultlens.analyzer.facts."""
