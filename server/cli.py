"""sluice: serve | models | build | bench (build and bench run the tooling by name: server/tools.py)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from server.errors import ConfigError

log = logging.getLogger("sluice")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def limit_tokenizer_threads(threads: int) -> None:
    """The Rust tokenizer's thread pool reads these once, at its first parallel batch."""
    if threads <= 1:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    else:
        os.environ["TOKENIZERS_PARALLELISM"] = "true"
        os.environ["RAYON_NUM_THREADS"] = str(threads)


def _build_missing(repo: Path, only: Sequence[str]) -> int:
    """Build the default models that are not built yet (``sluice serve`` without --no-build),
    through the pipeline's ``build-missing`` tool; without the tooling there is nothing to build."""
    from server import tools

    try:
        build_missing = tools.load("build-missing")
    except tools.ToolMissing as e:
        log.info("not building missing default models: %s", e)
        return 0
    return int(build_missing(repo, tuple(only)))


def _nothing_to_serve(repo: Path, only: Sequence[str]) -> list[str]:
    """With --no-build (and without the pipeline): the models to serve when not one of them has
    a version folder on disk, i.e. a repository that was never built; else []."""
    from server.repository.loader import available_versions, list_model_folders

    try:
        folders = list_model_folders(repo)
    except ConfigError:
        return []
    if only:
        folders = [f for f in folders if f.name in only]
    if folders and not any(available_versions(f) for f in folders):
        return [f.name for f in folders]
    return []


ACCESS_FLAGS = ("model_control_mode", "repository_poll_secs", "admin_keys_dir", "api_keys_dir",
                "ssl_certfile", "ssl_keyfile")
ACCESS_LISTS = ("allowed_hosts", "cors_origins")


def add_access_flags(s: argparse.ArgumentParser) -> None:
    """``sluice serve``'s access flags (settings of the same names; README "Access")."""
    s.add_argument("--model-control-mode", choices=["none", "explicit", "poll"], default=None,
                   help="none (default): load/unload refused; explicit: allowed with an admin "
                   "key; poll: watch the repository (load/unload refused, as Triton)")
    s.add_argument("--repository-poll-secs", type=float, default=None,
                   help="poll mode: seconds between looks at the repository (default 15)")
    s.add_argument("--admin-keys-dir", type=Path, default=None,
                   help="folder of admin keys, one per file (a mounted Secret)")
    s.add_argument("--api-keys-dir", type=Path, default=None,
                   help="folder of API keys for inference and metadata, one per file")
    s.add_argument("--allowed-hosts", default=None,
                   help="comma-separated names the Host header may carry (default: any)")
    s.add_argument("--cors-origins", default=None,
                   help="comma-separated origins allowed cross-origin requests (default: none)")
    s.add_argument("--ssl-certfile", type=Path, default=None, help="TLS certificate (PEM)")
    s.add_argument("--ssl-keyfile", type=Path, default=None, help="TLS private key (PEM)")


def cmd_serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from server.settings import Settings

    overrides: dict[str, object] = {}
    for key in ("model_repository", "host", "port", "metrics_port", "shutdown_delay_s", "log_level",
                "device", "frontends", *ACCESS_FLAGS):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    if args.models is not None:
        overrides["models"] = _csv(args.models)
    for key in ACCESS_LISTS:
        if getattr(args, key) is not None:
            overrides[key] = _csv(getattr(args, key))
    if args.no_build:
        overrides["build_missing"] = False
    try:
        settings = Settings.model_validate(overrides)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'settings'}: {err['msg']}"
                             for err in e.errors())
        print(f"sluice: invalid settings: {problems}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format=LOG_FORMAT)
    repo = settings.model_repository
    if not repo.is_dir():
        print(f"sluice: model repository '{repo}' does not exist", file=sys.stderr)
        return 2
    if settings.build_missing:
        status = _build_missing(repo, settings.models)
        if status:
            return status
    else:
        unbuilt = _nothing_to_serve(repo, settings.models)
        if unbuilt:
            print(
                f"sluice: nothing to serve: no version folder in {', '.join(unbuilt)} ({repo}).\n"
                f"  Default models are built with:  sluice build {' '.join(unbuilt)} --repository {repo}\n"
                f"  (needs the build extra; or serve without --no-build to build them first)",
                file=sys.stderr,
            )
            return 2
    from server.app import create_app
    from server.cluster.mode import resolve
    from server.http_server import serve
    from server.lifecycle import Lifecycle

    frontends = resolve(settings.frontends, settings.device)
    if frontends > 0:
        from server.cluster.supervisor import run_cluster

        return run_cluster(settings, frontends)
    limit_tokenizer_threads(settings.tokenizer_threads)

    lifecycle = Lifecycle(shutdown_delay_s=settings.shutdown_delay_s)
    return serve(create_app(settings, lifecycle), settings, lifecycle)


def cmd_models(args: argparse.Namespace) -> int:
    from server.repository.loader import (
        available_versions,
        list_model_folders,
        read_config,
        select_versions,
    )

    try:
        folders = list_model_folders(Path(args.repository))
    except ConfigError as e:
        print(f"sluice: {e}", file=sys.stderr)
        return 2
    bad = 0
    print(f"{'model':24} {'task':20} {'backend':12} {'on disk':10} {'serves':8} status")
    for folder in folders:
        on_disk = available_versions(folder)
        task = backend = "?"
        try:
            config = read_config(folder)
            task, backend = config.task, config.engine.backend
            status, serves = "ok", ",".join(map(str, select_versions(folder, config)))
        except ConfigError as e:
            bad += 1
            status, serves = f"ERROR {e}", "-"
        disk = ",".join(map(str, on_disk)) or "-"
        print(f"{folder.name:24} {task:20} {backend:12} {disk:10} {serves:8} {status}")
    if not folders:
        print("(no model folders with a config.yaml)")
    return 1 if bad else 0


def run_tool(name: str, argv: Sequence[str]) -> int:
    """``sluice build`` / ``sluice bench``: the pipeline's or the load tests' own command line."""
    from server import tools

    try:
        main = tools.load(name)
    except tools.ToolMissing as e:
        print(f"sluice {name}: {e} (install the source tree: pip install -e '.[build,dev]')",
              file=sys.stderr)
        return 2
    return int(main(list(argv)) or 0)


#: Subcommands that are the tooling's own command lines (server/tools.py).
TOOLS = ("build", "bench")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sluice", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="serve a model repository over HTTP (KServe v2 + classify)")
    s.add_argument("--model-repository", type=Path, default=None,
                   help="model repository folder (default: model_repository, or SLUICE_MODEL_REPOSITORY)")
    s.add_argument("--host", default=None,
                   help="interface (default 127.0.0.1; 0.0.0.0 for every interface)")
    s.add_argument("--port", type=int, default=None, help="port (default 8000)")
    s.add_argument("--metrics-port", type=int, default=None,
                   help="also serve /metrics on this port, e.g. 8002 (default 0: main port only)")
    s.add_argument("--shutdown-delay-s", type=float, default=None,
                   help="on SIGTERM, seconds to stay serving while readiness answers 503 "
                        "before draining (default 5; SIGINT skips it)")
    s.add_argument("--models", default=None, help="comma-separated subset of models to serve")
    s.add_argument("--no-build", action="store_true",
                   help="never build missing default models (for your own repository)")
    s.add_argument("--device", default=None,
                   help="run every model on this device (cpu, cuda, cuda:N), whatever its "
                   "config.yaml says (default: each config's own; SLUICE_DEVICE)")
    s.add_argument("--frontends", default=None,
                   help="front-end processes sharing the port, feeding one engine process: "
                   "N, or auto (CPUs - 1 on a GPU host, else 0); 0 (default): one process")
    s.add_argument("--log-level", default=None, help="debug, info, warning, error")
    add_access_flags(s)
    s.set_defaults(func=cmd_serve)

    m = sub.add_parser("models", help="validate a model repository and list its models")
    m.add_argument("repository", nargs="?", default="model_repository")
    m.set_defaults(func=cmd_models)

    sub.add_parser("build", help="fine-tune, distil, quantize and export the default models "
                   "(options: sluice build --help)", add_help=False)
    sub.add_parser("bench", help="load-test Sluice against a naive server and the engine ceiling "
                   "(options: sluice bench --help)", add_help=False)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in TOOLS:
        return run_tool(argv[0], argv[1:])
    args = parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
