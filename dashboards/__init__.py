"""faultlens.dashboards: the Streamlit app on-call opens.

``faultlens dashboard [--db FILE] [--port P]`` serves it; ``ENTRYPOINT`` is
the script ``streamlit run`` executes. Pages live in ``pages/``, one file each,
with a ``render(con, filters)`` that calls ``faultlens.analyzer`` and draws.
"""

from pathlib import Path

__all__ = ["ENTRYPOINT"]

ENTRYPOINT = Path(__file__).with_name("_app.py")
