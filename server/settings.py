"""Server settings: command-line flags override ``SLUICE_*`` environment variables.

Read once, when the server starts (never at import time).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from engines.options import cuda_index
from server.cpus import CGROUP_ROOT, PROC_SELF_CGROUP, available_cpus


def default_threads(
    cgroup_root: Path = CGROUP_ROOT, proc_self_cgroup: Path = PROC_SELF_CGROUP
) -> int:
    """CPUs this process may use: min(affinity mask, cgroup v2 ``cpu.max`` / v1 CFS quota,
    rounded up). In a pod that is its CPU limit, not the node's cores."""
    return available_cpus(cgroup_root, proc_self_cgroup)


def _comma_list(value: object) -> object:
    """``SLUICE_API_KEYS=a,b`` (comma-separated in the environment) as a tuple."""
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return value


CommaList = Annotated[tuple[str, ...], NoDecode]


class Settings(BaseSettings):
    """Everything an operator can set; each field is also ``SLUICE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="SLUICE_", extra="ignore", frozen=True)

    model_repository: Path = Path("model_repository")
    """Folder holding one sub-folder per model (config.yaml + version folders)."""
    models: tuple[str, ...] = ()
    """Serve only these models (empty: every model in the repository)."""
    host: str = "127.0.0.1"
    """Interface to listen on: loopback by default, so nothing off the machine reaches a server
    nobody meant to expose; containers and manifests pass ``--host 0.0.0.0`` explicitly."""
    port: int = Field(default=8000, ge=0, le=65535)
    """HTTP port (0 picks a free one)."""
    metrics_port: int = Field(default=0, ge=0, le=65535)
    """Also serve ``/metrics`` on this port (like Triton's 8002), so a network policy can admit
    the scrape alone; it keeps answering through the lame duck. 0: only on ``port``."""
    device: str = ""
    """Run every model on this device, whatever its config.yaml says: ``cpu``, ``cuda`` or
    ``cuda:N``; empty keeps each model's own ``engine.device``. For one image on CPU and GPU
    nodes. ONNX Runtime providers that belong to the other device are dropped, so the engine
    picks the device's own (CUDA then CPU on ``cuda``)."""
    build_missing: bool = True
    """Build missing default models before serving (``sluice build``); off for your own repository."""
    max_request_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    """Largest request body accepted; larger bodies get 413."""
    max_tensor_elements: int = Field(default=4 * 1024 * 1024, ge=1, le=2**31)
    """Elements one input tensor's ``shape`` may declare; more get 413 before anything is
    allocated."""
    max_tensor_dims: int = Field(default=8, ge=1, le=32)
    """Dimensions one input's ``shape`` may have; more get 400."""
    max_text_chars_per_token: int = Field(default=16, ge=1, le=1024)
    """Texts are cut to ``max_length`` x this many characters before tokenizing (the tokenizer
    truncates to ``max_length`` tokens anyway), or answer 400 where the model's config sets
    ``strict_length``."""
    header_timeout_s: float = Field(default=10.0, gt=0.0, le=600.0)
    """Time a connection has to send a request's head (request line and headers), from its
    first byte, or from the connection's start; past it: 408 and close."""
    body_timeout_s: float = Field(default=30.0, gt=0.0, le=3600.0)
    """Time a request has to send its whole body after its head; past it: 408 and close."""
    max_header_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    """Largest request head (request line and headers); larger: 431 and close."""
    max_header_count: int = Field(default=100, ge=8, le=10_000)
    """Most headers in one request; more: 431 and close."""
    keep_alive_timeout_s: float = Field(default=30.0, gt=0.0, le=3600.0)
    """An idle kept-alive connection is closed after this long; keep it below the load
    balancer's idle timeout (60 s on most cloud LBs) so the server, not the LB, closes first."""
    max_connections: int = Field(default=4096, ge=1, le=1_000_000)
    """Open connections plus requests in flight (uvicorn's ``limit_concurrency``); past it new
    requests answer 503 with ``Retry-After`` at once."""
    frontends: Annotated[int, Field(ge=0, le=64)] | Literal["auto"] = 0
    """Front-end processes (``sluice serve --frontends``). 0: one process, as always. N >= 1:
    N processes share the port (``SO_REUSEPORT``) and do the HTTP work (parsing, validation,
    encoding the answers) and one engine process owns the models, the batchers and the engines;
    a supervisor restarts whichever dies. ``auto``: the CPUs this process may use (the cgroup
    limit) - 1 when the models run on a GPU (``device`` cuda, or none set and
    ``/dev/nvidiactl`` present), else 0; 0 too with 2 CPUs or fewer (there the front ends take
    the engine's cores). ``max_connections`` holds per front end."""
    engine_threads: int = Field(default=0, ge=0, le=256)
    """Intra-op threads per engine instance when a model's config says 0; 0 derives it from the
    CPUs this process may use (``default_threads``: the affinity mask and the cgroup CPU limit)."""
    tokenizer_threads: int = Field(default=1, ge=1, le=256)
    """Threads one batch's tokenization may use. 1 keeps it on its worker thread, so it overlaps
    the engine's compute without taking the engine's cores (short texts tokenize in ~40 us each)."""
    worker_threads: int = Field(default=0, ge=0, le=256)
    """Threads for tokenization (and loading); 0 = 2 x the CPUs this process may use + 2
    (``default_threads``). Engine calls run on a thread
    of each instance's own, so a call stuck past the watchdog never holds one of these."""
    drain_timeout_s: float = Field(default=30.0, ge=0.0, le=3600.0)
    """On shutdown, how long queued and running requests may take to finish."""
    shutdown_delay_s: float = Field(default=5.0, ge=0.0, le=600.0)
    """On SIGTERM, how long readiness answers 503 while every request is still served (the lame
    duck), before the listener closes and the drain starts: longer than the load balancer takes
    to drop the endpoint. 0 drains at once; SIGINT always does. Orchestrators' grace period must
    cover shutdown_delay_s + drain_timeout_s + 10 s."""
    log_level: str = "info"
    """uvicorn and sluice log level."""
    response_cache_size: int = Field(default=0, ge=0)
    """Entries in the per-model response cache for repeated inputs; 0 turns it off."""
    access_log: bool = True
    """One JSON line per HTTP request on the ``sluice.access`` logger (stdout, INFO): request id,
    route, model, version, status, stage times, batch size, client; never the body. Off: no
    per-request formatting (the request counter, ``X-Request-ID`` and ``Server-Timing`` stay)."""

    engine_plugins: str = Field(default="", max_length=4096)
    """Plugin engines a model's ``engine.backend: "package.module:factory"`` may name: empty
    (the default) allows none; ``*`` any module; else comma-separated module prefixes
    (``tests.support,loadtests`` allows ``tests.support.fault_engine``). For tests and benchmarks:
    a plugin runs arbitrary code in the server."""
    engine_call_timeout_s: float = Field(default=0.0, ge=0.0, le=3600.0)
    """The watchdog's limit on one engine call (one batch); past it the batch answers 504 and the
    instance is replaced. 0 derives it per batch from the measured latency: max(30 s, 10 x the
    batch's expected compute)."""
    cost_grid_budget_s: float = Field(default=20.0, ge=0.0, le=600.0)
    """Seconds one text model's load may spend timing its engine over a grid of batch sizes x
    padded lengths (for each candidate split of the cores into instances x threads), the cost
    model that then cuts batches, picks the split and drives admission and the watchdog. Grids
    are cached in ``$TMPDIR/sluice-cost`` (keyed by model file, engine settings and machine), so
    a restart reads them instead. 0: no cost model (the config's ``instance_count`` and
    ``sub_batch_tokens``, and a latency line fitted to the warm-up batches)."""
    max_stuck_calls: int = Field(default=2, ge=1, le=64)
    """Engine calls abandoned by the watchdog (still running in their threads: a running ONNX
    Runtime call cannot be cancelled) at which a model goes UNAVAILABLE (readiness 503) until
    they finish; below it each stuck instance is replaced by a freshly loaded one."""

    @property
    def engine_plugin_prefixes(self) -> tuple[str, ...]:
        """``engine_plugins`` as the module prefixes ``engines.registry.load_engine`` takes."""
        return tuple(p.strip() for p in self.engine_plugins.split(",") if p.strip())

    # ---- access (README "Security" / "Access") -----------------------------------------------
    model_control_mode: Literal["none", "explicit", "poll"] = "none"
    """Triton's ``--model-control-mode``. ``none``: load and unload answer 403; ``explicit``:
    they work, with an admin key; ``poll``: the repository is watched every
    ``repository_poll_secs`` (new or changed versions load, warm and replace the old, which
    drain; removed models unload) and, as in Triton, load and unload answer 403.
    ``/v2/repository/index`` is readable in every mode and changes nothing."""
    repository_poll_secs: float = Field(default=15.0, ge=0.5, le=3600.0)
    """In ``poll`` mode, seconds between two looks at the repository."""
    admin_keys: CommaList = Field(default=(), repr=False)
    """Keys that allow load and unload (``Authorization: Bearer <key>``); they are API keys too.
    Without any admin key, load and unload answer 403 in every mode."""
    admin_keys_dir: Path | None = None
    """A folder of admin keys, one per file (a Kubernetes Secret mounted as a folder, not with
    ``subPath``: that never updates); reread within 2 s of a change."""
    api_keys: CommaList = Field(default=(), repr=False)
    """Keys for inference and metadata (``Authorization: Bearer <key>``). With none configured
    (here or in ``api_keys_dir``) inference and metadata are open."""
    api_keys_dir: Path | None = None
    """A folder of API keys, one per file; as ``admin_keys_dir``."""
    health_requires_key: bool = False
    """Also require an API key on ``/v2/health/*`` (kubelet probes then need ``httpHeaders``)."""
    metrics_requires_key: bool = False
    """Also require an API key on ``/metrics`` (on both ports)."""
    allowed_hosts: CommaList = ()
    """Names the ``Host`` header may carry (``name`` or ``name:port``; against DNS rebinding);
    others get 421. Empty: any. ``/v2/health/*`` and ``/metrics`` are exempt (probes and scrapes
    use the pod IP)."""
    cors_origins: CommaList = ()
    """Origins allowed cross-origin requests (CORS); empty: CORS off and any cross-site POST
    refused."""
    ssl_certfile: Path | None = None
    """TLS certificate (PEM) to serve HTTPS; needs ``ssl_keyfile``."""
    ssl_keyfile: Path | None = None
    """TLS private key (PEM) for ``ssl_certfile``."""

    _lists = field_validator("admin_keys", "api_keys", "allowed_hosts", "cors_origins",
                             mode="before")(_comma_list)

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile: set both, or neither")
        return self

    @model_validator(mode="after")
    def _distinct_ports(self) -> Settings:
        if self.metrics_port and self.metrics_port == self.port:
            raise ValueError(f"metrics_port: {self.metrics_port} is already the HTTP port; "
                             "use another port, or 0 to serve /metrics on the HTTP port only")
        return self

    @field_validator("engine_plugins")
    @classmethod
    def _plugin_prefixes(cls, value: str) -> str:
        for prefix in (p.strip() for p in value.split(",") if p.strip()):
            if prefix != "*" and not all(part.isidentifier() for part in prefix.split(".")):
                raise ValueError(f"engine_plugins: '{prefix}' is neither '*' nor a module prefix "
                                 "like 'tests.support'")
        return value

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if value:
            cuda_index(value)  # a ValueError naming the accepted forms
        return value
