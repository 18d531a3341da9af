"""faultlens.dashboards: the Streamlit app on-call opens.

``faultlens dashboard [--db FILE] [--port P]`` serves it; ``ENTRYPOINT`` is
the script ``streamlit run`` executes. Pages live in ``app_pages/`` (not ``pages/``:
Streamlit would also serve that folder on its own, without the navigation), one file each,
with a ``render(con, filters)`` that calls ``faultlens.analyzer`` and draws.

Streamlit executes ``_app.py`` and the page files as scripts, outside the package, so
those files import ``faultlens.*`` by absolute name; every other module imports relatively.
"""

from pathlib import Path

__all__ = ["ENTRYPOINT"]

ENTRYPOINT = Path(__file__).with_name("_app.py")
