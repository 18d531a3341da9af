"""faultlens.analyzer.present."""
