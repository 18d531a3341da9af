"""faultlens.sample_traces: the sample multi-model system and its committed traces."""

__all__: list[str] = []
