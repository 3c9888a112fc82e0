#!/usr/bin/env python3
"""The chart's alerts and dashboard, checked against the real tools and the real binaries.

1. The PrometheusRule rendered with monitoring on (default thresholds) passes `promtool check rules`.
2. `promtool test rules` fires each alert on series that should fire it, and stays quiet on healthy
   ones (scripts/monitoring-rules-test.yaml).
3. Every metric the rules and the dashboard name is one a built binary really serves: the files under
   $CDCSTAR_METRICS_DIR (default .services/exported-metrics), saved from the operator's /metrics by
   scripts/check-shipped-binaries.py and from the capture and sink pods by scripts/kubelet.py during
   the end-to-end test.

promtool is Debian's (`scripts/services.sh up` extracts it to .services/bin). Prints
`monitoring checks: N passed, M failed`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
METRICS_DIR = Path(os.environ.get("CDCSTAR_METRICS_DIR", ROOT / ".services" / "exported-metrics"))
RULES_TEST = ROOT / "scripts" / "monitoring-rules-test.yaml"
EXPORTERS = ("operator", "capture", "sink")
NAME = re.compile(r"\bcdcstar_[a-z0-9_]+")


def load_check_chart():
    spec = importlib.util.spec_from_file_location("check_chart", ROOT / "scripts" / "check-chart.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_chart"] = module  # NB: its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def promtool() -> str:
    found = shutil.which("promtool") or str(ROOT / ".services" / "bin" / "promtool")
    if not Path(found).exists():
        raise SystemExit("monitoring checks: no promtool (scripts/services.sh up installs it into .services/bin)")
    return str(Path(found).resolve())


def exported_names() -> dict[str, set[str]]:
    """Per exporter, every series name it serves (a counter `x` as `x_total`, a histogram as
    `x_bucket`, `x_sum`, `x_count`)."""
    names: dict[str, set[str]] = {}
    for exporter in EXPORTERS:
        path = METRICS_DIR / f"{exporter}.metrics"
        if not path.exists():
            continue
        found: set[str] = set()
        for line in path.read_text().splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(maxsplit=3)
                found |= {"counter": {f"{name}_total"}, "histogram": {f"{name}_{s}" for s in ("bucket", "sum", "count")}}.get(kind, {name})
            elif line and not line.startswith("#"):
                found.add(re.split(r"[{ ]", line, maxsplit=1)[0])
        names[exporter] = found
    return names


def main() -> int:
    check_chart = load_check_chart()
    objects = check_chart.render({"monitoring": {"podMonitor": {"enabled": True},
                                                 "prometheusRule": {"enabled": True},
                                                 "dashboard": {"enabled": True}}})
    rule = check_chart.one(objects, "PrometheusRule")
    dashboard_map = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-dashboard"))
    dashboard = json.loads(dashboard_map["data"]["cdcstar-pipelines.json"])
    tool = promtool()
    passed = failed = 0

    def result(name: str, problem: str | None) -> None:
        nonlocal passed, failed
        if problem:
            failed += 1
            print(f"FAIL {name}: {problem}")
        else:
            passed += 1
            print(f"PASS {name}")

    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "cdcstar-rules.yaml"
        rules.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
        checked = subprocess.run([tool, "check", "rules", str(rules)], capture_output=True, text=True)
        result("promtool check rules (the chart's PrometheusRule)",
               None if checked.returncode == 0 else checked.stdout + checked.stderr)
        test = Path(tmp) / "rules-test.yaml"
        test.write_text(RULES_TEST.read_text())
        tested = subprocess.run([tool, "test", "rules", str(test)], capture_output=True, text=True, cwd=tmp)
        result("promtool test rules: each alert fires on a failing pipeline, none on a healthy one",
               None if tested.returncode == 0 else tested.stdout + tested.stderr)

    exported = exported_names()
    missing_exporters = [e for e in EXPORTERS if e not in exported]
    every = set().union(*exported.values()) if exported else set()
    named = {
        "the rules": {n for r in rule["spec"]["groups"][0]["rules"] for n in NAME.findall(r["expr"])},
        "the dashboard": {n for p in dashboard["panels"] for t in p["targets"] for n in NAME.findall(t["expr"])},
    }
    for what, names in named.items():
        unknown = sorted(names - every)
        problem = None
        if missing_exporters:
            problem = (f"no saved /metrics of {', '.join(missing_exporters)} in {METRICS_DIR} "
                       "(check-shipped-binaries.py and the end-to-end test save them)")
        elif unknown:
            problem = f"names no binary exports: {', '.join(unknown)}"
        result(f"every metric {what} name is exported by a built binary ({len(names)} names)", problem)

    print(f"monitoring checks: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
