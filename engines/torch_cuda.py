"""The two CUDA fast paths of the torch backend: hand-captured CUDA graphs and torch.compile.

Small encoders on a GPU are bound by kernel launches below batch ~256 (batch 1 and batch 256
cost about the same in eager mode); replaying a captured graph removes the launches and is
4 to 8.5 times faster than fp32 eager (loadtests/RESULTS.md, the H200 engine table). Both
runners pad each batch to a (batch, sequence) bucket (:mod:`engines.torch_buckets`) and slice
the logits back.

Both return ``None`` for a batch larger than every bucket; the engine then runs it eagerly.
No test here can run this code without a GPU: it is written against torch's documented
``torch.cuda.graph`` / ``torch.compile`` API and kept deliberately plain.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from engines.torch_buckets import Bucket, pad_to_bucket, pick_bucket

#: Warm-up forward passes on a side stream before capture (lets lazy initialisation and
#: cuBLAS workspace allocation happen outside the graph).
_WARM_ITERATIONS = 2
#: Calls per bucket before cudagraph trees have recorded (and replayed) the compiled graph.
_COMPILE_WARM_CALLS = 3


def _buckets_largest_first(batch: Sequence[int], seq: Sequence[int]) -> list[Bucket]:
    """Capturing large shapes first lets smaller graphs reuse their pool memory."""
    return sorted(itertools.product(batch, seq), reverse=True)


class _BucketRunner:
    """What both fast paths share: the input names, the device and the (batch, sequence) buckets."""

    def __init__(
        self,
        names: Sequence[str],
        device: torch.device,
        batch_buckets: Sequence[int],
        seq_buckets: Sequence[int],
    ) -> None:
        self._names = list(names)
        self._device = device
        self.batch_buckets = tuple(batch_buckets)
        self.seq_buckets = tuple(seq_buckets)

    def _padded(self, inputs: Mapping[str, np.ndarray]) -> tuple[Bucket, dict[str, np.ndarray]] | None:
        """``inputs`` padded to their bucket, or None for a batch larger than every bucket."""
        rows, cols = inputs[self._names[0]].shape
        bucket = pick_bucket(self.batch_buckets, self.seq_buckets, rows, cols)
        if bucket is None:
            return None
        return bucket, pad_to_bucket(inputs, self._names, bucket)


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    inputs: dict[str, torch.Tensor]
    logits: torch.Tensor


class GraphRunner(_BucketRunner):
    """One CUDA graph per bucket, captured on first use (or all at once by ``capture_all``).

    All graphs share one memory pool. That is safe because every graph keeps its static
    inputs and output alive, and graphs are never replayed concurrently (one ``run`` at a
    time per engine instance).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        names: Sequence[str],
        device: torch.device,
        batch_buckets: Sequence[int],
        seq_buckets: Sequence[int],
    ) -> None:
        super().__init__(names, device, batch_buckets, seq_buckets)
        self._model = model
        self._pool = torch.cuda.graph_pool_handle()
        self._graphs: dict[Bucket, _Captured] = {}

    def _forward(self, feeds: Mapping[str, torch.Tensor]) -> torch.Tensor:
        logits: torch.Tensor = self._model(**feeds).logits
        return logits

    def _capture(self, bucket: Bucket) -> _Captured:
        device = self._device
        static = {n: torch.zeros(bucket, dtype=torch.int64, device=device) for n in self._names}
        if "attention_mask" in static:
            static["attention_mask"].fill_(1)
            if bucket[1] > 1:
                # One padded column, so the warm-up takes the masked attention path that the
                # captured graph replays (an all-ones mask lets transformers skip the mask).
                static["attention_mask"][:, -1] = 0
        side = torch.cuda.Stream(self._device)  # type: ignore[no-untyped-call]
        side.wait_stream(torch.cuda.current_stream(self._device))
        with torch.cuda.stream(side):
            for _ in range(_WARM_ITERATIONS):
                self._forward(static)
        torch.cuda.current_stream(self._device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # thread_local: other engine instances may use the GPU from their threads meanwhile.
        with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
            logits = self._forward(static)
        captured = _Captured(graph, static, logits)
        self._graphs[bucket] = captured
        return captured

    def capture_all(self) -> None:
        with torch.inference_mode(), torch.cuda.device(self._device):
            for bucket in _buckets_largest_first(self.batch_buckets, self.seq_buckets):
                if bucket not in self._graphs:
                    self._capture(bucket)

    @property
    def captured(self) -> list[Bucket]:
        return sorted(self._graphs)

    def run(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray | None:
        fitted = self._padded(inputs)
        if fitted is None:
            return None
        bucket, padded = fitted
        rows = int(inputs[self._names[0]].shape[0])
        with torch.inference_mode(), torch.cuda.device(self._device):
            captured = self._graphs.get(bucket) or self._capture(bucket)
            for name in self._names:
                captured.inputs[name].copy_(torch.from_numpy(padded[name]))
            captured.graph.replay()
            # .cpu() synchronises and copies out of the static output before the next replay.
            result: np.ndarray = captured.logits[:rows].float().cpu().numpy()
            return result

    def close(self) -> None:
        self._graphs.clear()


def _raise_recompile_limit(needed: int) -> None:
    """Each bucket is one static-shape compilation; dynamo stops recompiling after 8 by default
    and would silently fall back to eager for the remaining buckets."""
    import torch._dynamo

    config: Any = torch._dynamo.config
    for key in ("recompile_limit", "cache_size_limit"):  # renamed in torch 2.6
        if hasattr(config, key):
            setattr(config, key, max(int(getattr(config, key)), needed))
            return


class CompiledRunner(_BucketRunner):
    """``torch.compile(mode="reduce-overhead")`` over bucket-padded, static shapes.

    Inductor's cudagraph trees keep their graphs per Python thread, so every compiled call
    (warm-up and serving alike) runs on one dedicated thread owned by this runner; otherwise a
    serving thread other than the one that warmed up would record every graph again.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        names: Sequence[str],
        device: torch.device,
        batch_buckets: Sequence[int],
        seq_buckets: Sequence[int],
        mode: str = "reduce-overhead",
    ) -> None:
        super().__init__(names, device, batch_buckets, seq_buckets)
        _raise_recompile_limit(len(self.batch_buckets) * len(self.seq_buckets) + 8)
        self._compiled: Callable[..., Any] = torch.compile(model, mode=mode, dynamic=False)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sluice-compiled")

    def _call(self, padded: Mapping[str, np.ndarray], rows: int) -> np.ndarray:
        with torch.inference_mode(), torch.cuda.device(self._device):
            feeds = {n: torch.from_numpy(padded[n]).to(self._device) for n in self._names}
            logits: torch.Tensor = self._compiled(**feeds).logits
            # Copy out at once: cudagraph trees overwrite outputs on the next replay.
            result: np.ndarray = logits[:rows].float().cpu().numpy()
            return result

    def warm_all(self) -> None:
        for bucket in _buckets_largest_first(self.batch_buckets, self.seq_buckets):
            batch = {
                n: np.full(bucket, 0 if n == "token_type_ids" else 1, dtype=np.int64)
                for n in self._names
            }
            for _ in range(_COMPILE_WARM_CALLS):
                self._thread.submit(self._call, batch, bucket[0]).result()

    def run(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray | None:
        fitted = self._padded(inputs)
        if fitted is None:
            return None
        rows = int(inputs[self._names[0]].shape[0])
        return self._thread.submit(self._call, fitted[1], rows).result()

    def close(self) -> None:
        self._thread.shutdown(wait=True)
