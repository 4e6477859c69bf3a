"""The ``mobiletrain`` command line: the top-level app, its global options and its commands.

Each command group lives in its own module, registered below:
:mod:`~mobiletrain.cli.serve`, :mod:`~mobiletrain.cli.projects` (projects, tokens, upload),
:mod:`~mobiletrain.cli.jobs` (train, jobs), :mod:`~mobiletrain.cli.models` (models, predict),
:mod:`~mobiletrain.cli.maintenance` (fsck, compact, doctor), :mod:`~mobiletrain.cli.demo` and
:mod:`~mobiletrain.cli.simulate`.
"""

from __future__ import annotations

import typer

from mobiletrain.cli import demo, detection, jobs, maintenance, models, projects, serve, simulate
from mobiletrain.cli.common import CliApp, ServerOpt, TokenOpt, console, options, usage
from mobiletrain.client.sdk import DEFAULT_SERVER

QUICK_START = """Four steps from images to a model on a phone:

\b
  1. mobiletrain serve                  (--lan: reachable from phones)
  2. mobiletrain projects create digits --width 32 --height 32
  3. mobiletrain upload ./images -p digits      images/<label>/*.png
  4. mobiletrain train -p digits --watch
     then: mobiletrain models pull -p digits -o model.tflite

\b
Dashboard: http://127.0.0.1:8000 (admin token: mobiletrain-data/admin-token).
Check the install: mobiletrain doctor"""

app = CliApp(
    help="mobiletrain: train models for mobile apps and deliver TFLite files.\n\n" + QUICK_START,
    rich_markup_mode=None,
)


@app.callback(invoke_without_command=True)
def main(ctx: typer.Context, server: ServerOpt = DEFAULT_SERVER, token: TokenOpt = "") -> None:
    """Global options; with no command, the four steps of a first run."""
    options.server = server
    options.token = token
    if "://" in server:
        # grpc would try to resolve "http" as a host name; say what the option wants instead.
        address = server.split("://", 1)[1].split("/", 1)[0]
        raise usage(
            f"--server {server} is a URL; it takes the gRPC host:port "
            f"(e.g. --server {address if ':' in address else address + ':50051'})"
        )
    if ctx.invoked_subcommand is None:
        console.print(QUICK_START.replace("\b\n", ""), highlight=False, soft_wrap=True)
        console.print("Every command: mobiletrain --help")


# Registered in the order `mobiletrain --help` lists them (commands first, then the groups).
app.command()(serve.serve)
app.command()(projects.upload)
app.command("export-annotations")(detection.export_annotations)
app.command()(jobs.train)
app.command()(models.predict)
app.command()(maintenance.fsck)
app.command()(maintenance.compact)
app.command()(demo.demo)
app.command()(maintenance.doctor)
app.command("simulate-devices")(simulate.simulate_devices)
app.add_typer(projects.projects_app, name="projects")
app.add_typer(projects.tokens_app, name="tokens")
app.add_typer(models.models_app, name="models")
app.add_typer(jobs.jobs_app, name="jobs")
