"""faultlens.analyzer.analysis."""
