"""The pages' view models and their rendering: pure, no web framework.

Each page is a template plus a small view model built from the URL's query string; the
data itself is fetched by the page's script from the JSON API, so a page shows exactly
what an outside client would get, and an API error is shown in the page. The HTTP
handlers are in koban.api.pages.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import jinja2

from koban import __version__

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
UPLOT = "vendor/uplot-1.6.32"  # the directory scripts/vendor.sh writes

PRESETS = ("5m", "15m", "1h", "4h", "1d", "7d")

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(HERE / "templates")),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)

PAGES = {
    # name: (template, nav section, title; {0} is the path parameter)
    "logs": ("logs.html", "logs", "Logs"),
    "traces": ("traces.html", "traces", "Traces"),
    "trace": ("trace.html", "traces", "Trace {0}"),
    "services": ("services.html", "services", "Services"),
    "service": ("service.html", "services", "Service {0}"),
    "metrics": ("metrics.html", "metrics", "Metrics"),
    "storage": ("storage.html", "storage", "Storage"),
}


def render(name: str, query: Mapping[str, str], param: str = "", **extra: object) -> str:
    """The HTML of page `name` (a key of PAGES) for the URL query `query`; `param` is the
    path parameter (trace id, service name); `extra` adds to the view model (csrf_token,
    role). Raises KeyError for an unknown page."""
    template, section, title = PAGES[name]
    model = {
        "page": section,
        "title": title.format(param[:16]),
        "q": query.get("q", ""),
        "presets": PRESETS,
        "version": __version__,
        "uplot": UPLOT,
        "trace_id": param,
        "service": param,
        **extra,
    }
    return _env.get_template(template).render(model)
