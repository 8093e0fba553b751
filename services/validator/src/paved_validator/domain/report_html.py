"""The evidence report as one self-contained HTML page an inspector can read.

Rendered from the JSON document (the record of truth, whose digest is in the event);
every value is HTML-escaped, the page has no scripts and loads nothing.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:70em;color:#1d1d1f}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccd;padding:.35em .6em;
text-align:left;vertical-align:top}th{background:#f3f4f8}
.passed{color:#1a7f37;font-weight:600}.failed,.error{color:#b42318;font-weight:600}
.skipped{color:#6e6e73}code,pre{font:12px ui-monospace,monospace}
pre{background:#f6f8fa;padding:.8em;overflow-x:auto;white-space:pre-wrap}
.verdict{font-size:1.3em;padding:.5em 1em;border-radius:6px;display:inline-block}
.v-pass{background:#dafbe1}.v-fail{background:#ffebe9}
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _rows(pairs: list[tuple[str, Any]]) -> str:
    return "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in pairs)


def render(document: dict[str, Any], *, evidence_uri: str | None = None) -> str:
    """The HTML page for one evidence document."""
    passed = bool(document.get("passed"))
    verdict = (
        '<span class="verdict v-pass">PASSED</span>'
        if passed
        else '<span class="verdict v-fail">FAILED</span>'
    )
    checks = "".join(
        f'<tr><td>{_e(c.get("name"))}</td><td class="{_e(c.get("outcome"))}">'
        f"{_e(c.get('outcome'))}</td><td>{_e(c.get('duration_ms'))} ms</td>"
        f"<td>{_e(c.get('detail'))}</td></tr>"
        for c in document.get("checks", [])
    )
    reasons = "".join(f"<li>{_e(r)}</li>" for r in document.get("reasons", []))
    metrics = (document.get("details") or {}).get("metrics") or {}
    metric_rows = "".join(
        f"<tr><td>{_e(t.get('metric'))}</td><td>{_e(t.get('value'))}</td>"
        f"<td>{_e(t.get('min'))}</td><td>{_e(t.get('max'))}</td>"
        f'<td class="{"passed" if t.get("ok") else "failed"}">'
        f"{'ok' if t.get('ok') else _e(t.get('problem'))}</td></tr>"
        for t in metrics.get("thresholds", [])
    )
    summary = _rows([
        ("Model", f"{document.get('model_name')} version {document.get('version')}"),
        ("Artifact", document.get("artifact_uri")),
        ("Registered digest", document.get("artifact_digest")),
        ("Observed digest", document.get("observed_digest")),
        ("Framework", document.get("framework")),
        ("Risk tier", document.get("risk_tier")),
        ("Registered by", document.get("registered_by")),
        ("Validation id", document.get("validation_id")),
        ("Validator version", document.get("validator_version")),
        ("Started (UTC)", document.get("started_at")),
        ("Finished (UTC)", document.get("finished_at")),
        ("Evidence (JSON, record of truth)", evidence_uri),
    ])  # fmt: skip
    profile = json.dumps(document.get("sandbox_profile"), indent=2, sort_keys=True)
    details = json.dumps(document.get("details"), indent=2, sort_keys=True, default=str)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">"
        f"<title>Validation of {_e(document.get('model_name'))} "
        f"v{_e(document.get('version'))}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Validation evidence: {_e(document.get('model_name'))} "
        f"version {_e(document.get('version'))}</h1><p>{verdict}</p>"
        + (f"<h2>Why it failed</h2><ul>{reasons}</ul>" if reasons else "")
        + f"<h2>Summary</h2><table>{summary}</table>"
        "<h2>Checks, in order</h2><table><tr><th>check</th><th>outcome</th><th>time</th>"
        f"<th>detail</th></tr>{checks}</table>"
        + (
            "<h2>Metric thresholds</h2><table><tr><th>metric</th><th>measured</th><th>min</th>"
            f"<th>max</th><th>result</th></tr>{metric_rows}</table>"
            if metric_rows
            else ""
        )
        + f"<h2>Sandbox</h2><pre>{_e(profile)}</pre>"
        f"<h2>Step details</h2><pre>{_e(details)}</pre>"
        "</body></html>"
    )
