"""faultlens.analyzer.serve."""
