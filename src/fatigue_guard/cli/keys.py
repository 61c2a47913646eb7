"""``fatigue-guard keys``: device API keys (each bound to one user, stored hashed)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

keys_app = typer.Typer(no_args_is_help=True, help="Device API keys.")
console = Console()


@keys_app.command("create")
def create(
    user: Annotated[str, typer.Option("--user", help="The user the key may act for.")],
    label: Annotated[str | None, typer.Option(help="A note, e.g. the device name.")] = None,
) -> None:
    """Create a key and print it once: only its hash is stored."""
    from fatigue_guard.config import get_settings
    from fatigue_guard.storage.factory import build_storage

    storage = build_storage(get_settings())
    storage.check_schema()
    issued = storage.create_device_key(user, label)
    storage.close()
    console.print(f"key id {issued.key_id} for user {issued.user_id} (shown once, keep it safe):")
    typer.echo(issued.plaintext)


@keys_app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="The key id printed at creation.")]) -> None:
    """Revoke a key (API processes stop accepting it within the key-cache TTL)."""
    from fatigue_guard.config import get_settings
    from fatigue_guard.storage.factory import build_storage
    from fatigue_guard.storage.services import revoke_device_key

    storage = build_storage(get_settings())
    revoked = revoke_device_key(storage.uow_factory, key_id)
    storage.close()
    if not revoked:
        console.print(f"[red]no active key {key_id}[/red]")
        raise typer.Exit(1)
    console.print(f"revoked {key_id}")
