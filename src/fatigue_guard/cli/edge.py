"""``fatigue-guard export-edge``: (re)build and publish the edge bundle of a model version.

Publishing also happens on every deployment (:func:`fatigue_guard.lifecycle.edge_publication.
edge_publisher`, subscribed on the lifecycle's bus); this verb is for a first set-up, a repair
after a failed export, or exporting a staging candidate ahead of its promotion (stored, not
pointed at).

Exit codes: 0 published; 4 nothing to export (no production model); 5 the export failed.
"""

from __future__ import annotations

from typing import Annotated

import typer

EXIT_NOTHING = 4
EXIT_FAILED = 5


def export_edge(
    version: Annotated[
        str | None,
        typer.Option("--version", help="Model version; default: the production alias."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Rebuild even if this version is already stored.")
    ] = False,
) -> None:
    """Export a model version to ONNX + manifest in the blob store (what phones download)."""
    from rich.console import Console

    from fatigue_guard.config import get_settings
    from fatigue_guard.edge.compact import EdgeBudgetError
    from fatigue_guard.lifecycle.edge_publication import EdgeExportError, publish_edge

    console = Console()
    try:
        published = publish_edge(
            get_settings(), version=version, force=force, progress=console.print
        )
    except EdgeExportError as exc:
        console.print(f"[bold red]{exc}[/]")
        raise typer.Exit(EXIT_NOTHING) from None
    except EdgeBudgetError as exc:
        console.print(f"[bold red]no edge model fits the budget:[/] {exc}")
        raise typer.Exit(EXIT_FAILED) from None
    m = published.manifest
    console.print(
        f"[green]edge model v{m.model_version}[/] kind={m.kind} size={m.size_bytes / 1e6:.2f} MB "
        f"threshold={m.threshold:.4f} sha256={m.sha256[:16]}... "
        f"{'(phones will download it)' if published.current else '(stored, not current)'}"
    )
    if published.metrics:
        x = published.metrics
        console.print(
            f"recall at the floor: server {x['full_recall_at_floor']:.3f}, "
            f"edge {x['edge_recall_at_floor']:.3f}; edge p99 {x['edge_p99_ms']:.3f} ms; "
            f"training data {published.training_data}"
        )
