"""What every command shares: the consoles, the global options, usage errors and the one place
that turns a failed call (:class:`~mobiletrain.client.sdk.ClientError`) into one line."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from mobiletrain.client.sdk import DEFAULT_SERVER, Client, ClientError

console = Console()
err_console = Console(stderr=True)

ServerOpt = Annotated[
    str,
    typer.Option("--server", envvar="MOBILETRAIN_SERVER", help="gRPC address of the server"),
]
TokenOpt = Annotated[
    str,
    typer.Option(
        "--token",
        envvar="MOBILETRAIN_TOKEN",
        help="Admin or device token (default: DATA_DIR/admin-token of a local server)",
    ),
]
ProjectOpt = Annotated[str, typer.Option("--project", "-p", help="Project name or id")]


@dataclass
class GlobalOptions:
    """``--server`` and ``--token``, set by the top-level callback before any command runs."""

    server: str = DEFAULT_SERVER
    token: str = ""

    def client(self) -> Client:
        """An SDK client for the server and token given on the command line."""
        return Client(self.server, token=self.token or None)


options = GlobalOptions()
"""The global options of this invocation (commands read them; only the callback writes)."""


def usage(message: str) -> typer.Exit:
    """A command-line mistake: one line saying what to type instead, exit code 2."""
    err_console.print(f"usage error: {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


def choice(option: str, value: str | None, allowed: Iterable[str]) -> None:
    """Reject an unknown choice with one line listing the allowed values."""
    allowed = list(allowed)
    if value is not None and value not in allowed:
        example = f"{option} {allowed[0]}"
        raise usage(f"{option} {value!r} is not one of: {', '.join(allowed)} (e.g. {example})")


def fail(err: ClientError) -> typer.Exit:
    """One line for a failed call: what went wrong and what to type instead; exit code 1."""
    message = explain(err, options.server)
    err_console.print(
        f"error {err.code} ({err.status}): {message}", highlight=False, soft_wrap=True
    )
    return typer.Exit(code=1)


def explain(err: ClientError, server: str) -> str:
    """The server's message, or for transport failures the address tried and the likely cause."""
    if err.status == "UNAVAILABLE" and err.code == 0:
        return f"cannot reach a mobiletrain gRPC server at {server}: {_unreachable(err, server)}"
    if err.code == 60:
        return (
            f"{err.message} (the server wants a token: add --token mt_... before the command, "
            "or set MOBILETRAIN_TOKEN; a local server keeps its admin token in "
            "mobiletrain-data/admin-token)"
        )
    if err.code == 10:
        hint = "see: mobiletrain projects list; create one: mobiletrain projects create NAME"
        return f"{err.message} ({hint})"
    return err.message


def _unreachable(err: ClientError, server: str) -> str:
    """Why a server did not answer (from gRPC's transport message), and the fix."""
    detail = err.message
    if "://" in server:
        cause = "--server takes host:port (the gRPC port), not a URL"
        fix = f"--server {server.split('://', 1)[1].rstrip('/')}"
    elif "http1.x server" in detail or "HTTP/2" in detail:
        cause = "that is the HTTP port (dashboard/REST); the CLI talks gRPC (default port 50051)"
        fix = f"--server {server.rsplit(':', 1)[0]}:50051"
    elif "Connection refused" in detail:
        cause = "nothing listens there: is `mobiletrain serve` running, and on this port?"
        fix = f"mobiletrain serve (or --server HOST:{server.rsplit(':', 1)[-1]})"
    elif "resolv" in detail.lower() or "DNS" in detail:
        cause = "the host name does not resolve"
        fix = "--server 127.0.0.1:50051 or the server's IP address"
    elif "Socket closed" in detail or "Connection reset" in detail:
        cause = "the server closed the connection; a TLS server (serve --lan) needs its certificate"
        fix = "MOBILETRAIN_TLS_CA=mobiletrain-data/tls/cert.pem mobiletrain ..."
    elif "ssl" in detail.lower() or "handshake" in detail.lower() or "tls" in detail.lower():
        cause = "TLS mismatch: the server serves TLS, give its certificate"
        fix = "MOBILETRAIN_TLS_CA=DATA_DIR/tls/cert.pem mobiletrain ..."
    else:
        cause = detail.splitlines()[0] if detail else "the server did not answer"
        fix = "mobiletrain doctor"
    return f"{cause}; try: {fix}"


F = TypeVar("F", bound=Callable[..., Any])


def reports_client_errors(fn: F) -> F:
    """Run a command so that a failed call ends it with :func:`fail`'s line and exit code 1.

    :class:`CommandGroup` applies it to every command it registers, so no command repeats a
    ``try/except ClientError`` block. ``functools.wraps`` keeps the signature Typer reads.
    """

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ClientError as err:
            raise fail(err) from None

    run.reports_client_errors = True  # type: ignore[attr-defined]  # (checked by the tests)
    return run  # type: ignore[return-value]


class CommandGroup(typer.Typer):
    """A Typer app whose commands report a failed call in one line (see
    :func:`reports_client_errors`)."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:  # type: ignore[override]
        """Register a command, wrapped so a :class:`ClientError` becomes one line and exit 1."""
        register = super().command(*args, **kwargs)

        def decorator(fn: F) -> F:
            register(reports_client_errors(fn))
            return fn

        return decorator


class CliApp(CommandGroup):
    """The top-level app: its entry point turns every failure into one line, never a traceback.

    Usage errors (a missing option, a bad value) exit with 2, server and connection errors with
    1; ``MOBILETRAIN_DEBUG=1`` shows the traceback of an unexpected error.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("standalone_mode", False)
        try:
            rv = super().__call__(*args, **kwargs)
        except typer.TyperException as err:
            # Typer's own click: usage errors carry exit_code 2 and the context of the command.
            ctx = getattr(err, "ctx", None)
            if type(err).__name__ == "NoArgsIsHelpError" and ctx is not None:
                print(ctx.get_help())
                sys.exit(0)
            kind = "usage error" if err.exit_code == 2 else "error"
            hint = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
            err_console.print(
                f"{kind}: {err.format_message()}{hint}", highlight=False, soft_wrap=True
            )
            sys.exit(err.exit_code)
        except typer.Abort:
            err_console.print("aborted")
            sys.exit(130)
        except Exception as err:
            if os.environ.get("MOBILETRAIN_DEBUG"):
                raise
            err_console.print(
                f"error: {type(err).__name__}: {err} (MOBILETRAIN_DEBUG=1 shows the traceback)",
                highlight=False,
                soft_wrap=True,
            )
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)
