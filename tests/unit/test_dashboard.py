"""The Grafana dashboard in docs/ names only metrics that hpcplane exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import Counter, Histogram

from hpcplane import metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"


def test_dashboard_queries_exported_metrics() -> None:
    """Every hpcplane_* series a panel queries is a family hpcplane records (or its _total/_bucket)."""
    recorded = [m for m in vars(metrics.get()).values() if isinstance(m, Counter | Histogram)]
    families = {family.name for m in recorded for family in m.describe()}
    families |= {family.name for family in metrics.QueueCollector(lambda: (0, 0)).collect()}
    exprs = [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"]]
    named = {name for expr in exprs for name in re.findall(r"hpcplane_[a-z_]+", expr)}
    assert len(named) >= 10
    for name in named:
        base = re.sub(r"_(total|bucket)$", "", name)
        assert base in families, name
