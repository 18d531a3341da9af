"""faultlens.dashboards: the Streamlit app on-call opens."""

__all__: list[str] = []
