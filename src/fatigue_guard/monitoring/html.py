"""Render a :class:`MonitorReport` as one self-contained HTML page (plots as base64 PNG).

Plots: reference vs current for each drifted feature (at most ``MAX_FEATURE_PLOTS``), PSI per
feature against the threshold, physiology means with intervals, and precision per day against
the floor (labelled with Wilson intervals, estimated beside it). A single file so it can be
mailed, attached to a ticket or served from the blob store as-is.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import numpy as np

from fatigue_guard.monitoring.report import MonitorReport
from fatigue_guard.monitoring.signals import DistributionDrift

MAX_FEATURE_PLOTS = 4
_DPI = 72


def _figure(width: float, height: float, columns: int = 1, left: float = 0.1) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    # Figure() (not pyplot) keeps no global state: safe from the scheduler thread. Fixed
    # margins instead of tight_layout, which costs more than drawing the plot.
    fig = Figure(figsize=(width, height), dpi=_DPI)
    fig.subplots_adjust(left=left, right=0.98, top=0.88, bottom=0.2, wspace=0.5)
    return fig, fig.subplots(1, columns)


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return f'<img src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _distribution_plot(drift: DistributionDrift) -> str:
    assert drift.binning is not None and drift.current_counts is not None
    edges = drift.binning.edges
    fig, ax = _figure(5.0, 2.6)
    if len(edges) >= 2:
        # Densities over the interior percentile bins (the open tails have no width).
        widths = np.diff(edges)
        widths = np.where(widths > 0, widths, 1.0)
        for counts, label, style in (
            (drift.binning.counts, "reference", "-"),
            (drift.current_counts, "current", "--"),
        ):
            total = max(counts.sum(), 1.0)
            density = counts[1:-1] / total / widths
            ax.step(edges[:-1], density, where="post", linestyle=style, label=label)
    ax.set_title(f"{drift.name}: PSI {drift.psi:.3f}, W {drift.wasserstein:.2f} sd", fontsize=9)
    ax.legend(fontsize=8)
    return _png(fig)


def _psi_plot(report: MonitorReport, psi_threshold: float) -> str:
    fig, ax = _figure(7.0, 3.6, left=0.3)
    names = [f.name for f in report.features]
    values = [f.psi for f in report.features]
    colours = ["tab:red" if f.drifted else "tab:blue" for f in report.features]
    ax.barh(names, values, color=colours)
    ax.axvline(psi_threshold, color="black", linestyle=":", label=f"threshold {psi_threshold:g}")
    ax.tick_params(labelsize=7)
    ax.set_xlabel("PSI (red = drifted)", fontsize=8)
    ax.legend(fontsize=7)
    return _png(fig)


def _physiology_plot(report: MonitorReport) -> str:
    """One axes: each mean's shift with its interval, in units of its tolerance (band = +-1),
    the means themselves in the labels. One axes draws far faster than four."""
    shifts = [p for p in report.physiology if p.difference is not None and p.tolerance > 0]
    fig, ax = _figure(7.0, 2.4, left=0.42)
    for i, p in enumerate(shifts):
        assert p.difference is not None and p.lower is not None and p.upper is not None
        centre = p.difference / p.tolerance
        err = [[centre - p.lower / p.tolerance], [p.upper / p.tolerance - centre]]
        ax.errorbar(
            [centre],
            [i],
            xerr=err,
            fmt="o",
            capsize=4,
            color="tab:red" if p.flagged else "tab:blue",
        )
    ax.axvspan(-1, 1, color="0.9")
    ax.set_yticks(
        range(len(shifts)),
        [f"{p.name}: {p.reference_mean:.3g} -> {p.current_mean:.3g}" for p in shifts],
        fontsize=8,
    )
    ax.set_xlabel("shift of the mean / tolerance (grey = within tolerance)", fontsize=8)
    return _png(fig)


def _precision_plot(report: MonitorReport) -> str | None:
    daily = [d for d in report.performance.daily if d["precision"] is not None]
    if not daily:
        return None
    fig, ax = _figure(7.0, 2.6)
    x = np.arange(len(daily))
    precision = np.array([d["precision"] for d in daily])
    lower = np.array([d["interval"][0] for d in daily])
    upper = np.array([d["interval"][1] for d in daily])
    ax.errorbar(
        x,
        precision,
        yerr=[precision - lower, upper - precision],
        fmt="o-",
        capsize=3,
        label="labelled (Wilson 95%)",
    )
    estimated = [d["estimated_precision"] for d in daily]
    if all(e is not None for e in estimated):
        ax.plot(x, estimated, "s--", label="estimated (label-free)")
    ax.axhline(report.performance.floor, color="tab:red", linestyle=":", label="floor")
    ax.set_xticks(x, [d["day"][5:] for d in daily], fontsize=7, rotation=45)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    return _png(fig)


def _table(rows: list[list[Any]], header: list[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def render_html(report: MonitorReport, *, psi_threshold: float) -> str:
    """The whole report as an HTML page."""
    d = report.decision
    status = "BREACH" if d.breach else "OK"
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in d.reasons) or "<li>none</li>"
    drifted = sorted(report.drifted_features, key=lambda f: -f.psi)[:MAX_FEATURE_PLOTS]
    feature_rows = [
        [
            f.name,
            f.test,
            f"{f.psi:.4f}",
            f"{f.ks:.4f}",
            f"{f.wasserstein:.3f}",
            f"{f.p_value:.2e}",
            f"{f.missing_reference:.3f} / {f.missing_current:.3f}",
            "yes" if f.drifted or f.missing_drifted else "",
            "; ".join(f"{s['column']}={s['value']} (x{s['lift']:.1f})" for s in f.segments)
            or (f.scope or ""),
        ]
        for f in report.features
    ]
    perf = report.performance.as_dict()
    perf_rows = [
        [
            "precision",
            perf["precision"],
            perf["precision_interval"],
            perf["agreement"]["estimated_precision_on_labelled"],
            perf["estimated_precision"],
        ],
        ["recall", perf["recall"], perf["recall_interval"], "", perf["estimated_recall"]],
        [
            "event rate",
            perf["event_rate"],
            "",
            perf["agreement"]["expected_event_rate_on_labelled"],
            perf["expected_event_rate"],
        ],
    ]
    quality_rows = [
        [
            q.column,
            q.value,
            q.rows,
            f"{q.missing_share:.3f}",
            f"{q.out_of_range_share:.4f}",
            ", ".join(
                f"{i['feature']} ({i['issue']} {i['share']} vs {i['reference']})" for i in q.issues
            ),
        ]
        for q in report.quality
    ]
    pred = report.prediction.as_dict()
    precision_png = _precision_plot(report)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>fatigue-guard monitor report {report.id or ''}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;"
        "font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}</style></head><body>",
        f"<h1>Monitor report {report.id or ''}: {status}</h1>",
        f"<p>Window {report.window_start.isoformat()} to {report.window_end.isoformat()}, "
        f"{report.rows} rows; model {html.escape(str(report.model_name))} "
        f"v{html.escape(str(report.model_version))}, threshold {report.threshold}.</p>",
        f"<h2>Decision</h2><ul>{reasons}</ul>",
        f"<p>triggered: {d.triggered}; suppressed: {html.escape(str(d.suppressed))}</p>",
        "<h2>Performance</h2>",
        _table(perf_rows, ["", "labelled", "95% CI", "estimated (same rows)", "estimated (all)"]),
        f"<p>{perf['labels']} labels, {perf['labelled_alerts']} labelled alerts, "
        f"floor {perf['floor']}.</p>",
        precision_png or "<p>No labelled alerts in the window.</p>",
        "<h2>Feature drift</h2>",
        _psi_plot(report, psi_threshold),
        _table(
            feature_rows,
            ["feature", "test", "PSI", "KS", "W/sd", "p", "missing ref/cur", "drift", "segments"],
        ),
        *(_distribution_plot(f) for f in drifted),
        "<h2>Population physiology</h2>",
        _physiology_plot(report),
        _table(
            [
                [p.name, p.reference_mean, p.current_mean, p.lower, p.upper, p.tolerance, p.flagged]
                for p in report.physiology
            ],
            ["feature", "reference", "current", "diff low", "diff high", "tolerance", "flagged"],
        ),
        "<h2>People</h2>",
        "<p>Per-person means in the window against the reference's people: their mean, and the "
        "share of people below / above the reference's central range of weekly means.</p>",
        _table(
            [
                [
                    p.name,
                    f"{p.people_reference} / {p.people_current}",
                    _fmt(p.reference_mean),
                    _fmt(p.current_mean),
                    "; ".join(
                        f"{t.side} {t.edge:.4g}: {t.reference_share:.2f} / {t.current_share:.2f}"
                        for t in p.tails
                    ),
                    p.tolerance,
                    "yes" if p.flagged else "",
                ]
                for p in report.persons
            ],
            ["feature", "people ref / cur", "reference", "current", "tails", "tolerance", "flag"],
        ),
        "<h2>Predictions</h2>",
        f"<p>alert rate {pred['alert_rate_current']} vs reference "
        f"{pred['alert_rate_reference']} (p={pred['alert_rate_p_value']}); score PSI "
        f"{(pred['scores'] or {}).get('psi')}.</p>",
        "<h2>Data quality by segment</h2>",
        _table(quality_rows, ["column", "value", "rows", "missing", "out of range", "issues"]),
        "</body></html>",
    ]
    return "\n".join(parts)
