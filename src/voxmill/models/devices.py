"""Where a model can run: onnxruntime providers, NVML's view of the GPUs, and thread-budgeted sessions."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

__all__ = ["DeviceChoice", "GpuInfo", "choose_device", "gpus", "onnx_providers", "session_options"]


_shared_arena = threading.Lock()
_arena_registered = False


def _share_cpu_arena(onnxruntime: Any) -> None:
    """Register one CPU memory arena for the process, once; sessions opt in with ``use_env_allocators``.

    Why: each session otherwise grows an arena of its own, in power-of-two steps, and keeps it; a split
    voice has three sessions, and two workers run in them at once. Shared, the arenas' slack is paid once.
    Measured with `voxmill synth` on benchmarks/texts (two thread workers): peak RSS on the literary text
    411 -> 322 MiB, on the dialogue text 230-238 -> 222-236 MiB; CPU time the same. An evicted model's
    working memory stays in the arena for the next one instead of going back to the system.
    """
    global _arena_registered
    with _shared_arena:
        if _arena_registered:
            return
        info = onnxruntime.OrtMemoryInfo("Cpu", onnxruntime.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0,
                                         onnxruntime.OrtMemType.DEFAULT)  # fmt: skip
        # 0, 0, -1, -1: onnxruntime's own defaults (no limit, power-of-two growth, its chunk sizes).
        onnxruntime.create_and_register_allocator(info, onnxruntime.OrtArenaCfg(0, 0, -1, -1))
        _arena_registered = True


def session_options(threads: int) -> Any:
    """onnxruntime SessionOptions for one worker: intra-op = budget, inter-op = 1, no spinning, and the
    process's one CPU arena (:func:`_share_cpu_arena`)."""
    import onnxruntime

    _share_cpu_arena(onnxruntime)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    # Spinning threads burn a core waiting for the next run; with one worker per core that is theft.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.add_session_config_entry("session.use_env_allocators", "1")
    return options


def onnx_providers() -> list[str]:
    import onnxruntime

    return list(onnxruntime.get_available_providers())


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    total_bytes: int
    used_bytes: int
    free_bytes: int
    utilization: float | None
    temperature: float | None


def gpus() -> tuple[list[GpuInfo], str | None]:
    """GPUs as NVML reports them, and why none are listed when the list is empty."""
    try:
        import pynvml
    except ImportError:
        return [], "nvidia-ml-py is not installed"
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return [], f"NVML unavailable: {exc}"
    found = []
    try:
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            name = pynvml.nvmlDeviceGetName(handle)
            try:
                util: float | None = float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except Exception:
                util = None
            try:
                temp: float | None = float(pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU))
            except Exception:
                temp = None
            found.append(
                GpuInfo(
                    index,
                    name.decode() if isinstance(name, bytes) else str(name),
                    int(memory.total),
                    int(memory.used),
                    int(memory.free),
                    util,
                    temp,
                )
            )
    finally:
        pynvml.nvmlShutdown()
    return found, None if found else "NVML reports no GPU"


@dataclass(frozen=True)
class DeviceChoice:
    device: str  # "cpu" or "cuda:N"
    fallback_reason: str | None = None


def _cuda_capable(kind: str) -> str | None:
    """None when this kind of model can use CUDA here, else the reason it cannot."""
    if kind == "whisper":
        try:
            import ctranslate2
        except ImportError:
            return "ctranslate2 is not installed"
        return None if ctranslate2.get_cuda_device_count() > 0 else "ctranslate2 sees no CUDA device"
    if kind == "silero-vad":
        return "Silero VAD runs on CPU: a 32-ms step costs less than a GPU call"
    if "CUDAExecutionProvider" not in onnx_providers():
        return "onnxruntime has no CUDAExecutionProvider"
    return None


def choose_device(requested: str, kind: str, need_bytes: int) -> DeviceChoice:
    """``auto``: CUDA when the runtime supports it and a GPU has room; otherwise CPU, with the reason."""
    if requested == "cpu":
        return DeviceChoice("cpu")
    reason = _cuda_capable(kind)
    if reason is None:
        devices, why = gpus()
        roomy = [g for g in devices if g.free_bytes >= need_bytes]
        if roomy:
            best = max(roomy, key=lambda g: g.free_bytes)
            return DeviceChoice(f"cuda:{best.index}")
        reason = why or f"no GPU has {need_bytes / 2**20:.0f} MiB free"
    if requested.startswith("cuda"):
        return DeviceChoice("cpu", f"{requested} requested but {reason}")
    return DeviceChoice("cpu", reason)
