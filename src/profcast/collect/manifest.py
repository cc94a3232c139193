"""The suite's manifest beside its traces: the machine it ran on and what became of every workload.

``<out>/<exp>/<instance>/suite-manifest.json`` is rewritten whole (a temporary file, flushed to the
disk, renamed over it) after every change, so whatever stops the suite (a crash, Ctrl-C, a kill, a
full disk, the budget, the machine going away) leaves the last consistent state. Statuses:

  pending         not run yet (a later run does it)
  running         being run; found at start, it means the process died inside it (marked failed)
  done            its trace is written (``noisy: true`` when its timed steps spread too wide or the
                  machine was busy, twice: see ``collect.quality``)
  out_of_memory   the device ran out of memory: this batch does not fit this device
  failed          it raised an error (the message is kept); a later run retries it with --retry-failed
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

from profcast.collect.out_folder import is_disk_full, why_not_writable
from profcast.errors import ProfcastError
from profcast.ingest.profile_files import SUITE_MANIFEST

PENDING, RUNNING, DONE, OUT_OF_MEMORY, FAILED = "pending", "running", "done", "out_of_memory", "failed"
FINISHED_STATUSES = (DONE, OUT_OF_MEMORY)  # never run again
DIED_INSIDE = "the process ended while this workload ran (killed, out of host memory, or a crash below Python)"

__all__ = ["SUITE_MANIFEST", "Manifest", "describe_machine"]


class ManifestNotWritten(ProfcastError):
    """The manifest could not be written (the file on disk is the last one that was); ``disk_full`` says why."""

    def __init__(self, message: str, disk_full: bool):
        super().__init__(message)
        self.disk_full = disk_full


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class Manifest:
    """The manifest of one instance's folder: ``machine``, ``suite`` and ``workloads`` (name -> record)."""

    def __init__(self, folder, content: dict):
        self.path = Path(folder) / SUITE_MANIFEST
        self.content = content

    @classmethod
    def open(cls, folder, suite: str, instance: str, machine: dict) -> Manifest:
        """The folder's manifest (a new one if there is none); a run left ``running`` becomes failed."""
        path = Path(folder) / SUITE_MANIFEST
        if not path.exists():
            return cls(
                folder, {"instance": instance, "suite": suite, "machine": machine, "started": now(), "workloads": {}}
            )
        try:
            content = json.loads(path.read_text())
            assert isinstance(content, dict) and isinstance(content.get("workloads"), dict)
        except (OSError, ValueError, AssertionError):
            raise ProfcastError(f"{path}: not a suite manifest; move it away or pass another --out") from None
        if content.get("instance") != instance:
            raise ProfcastError(
                f"{path}: the folder holds instance {content.get('instance')!r}, not {instance!r}; pass another --out or --instance"
            )
        recorded = content.get("machine", {}).get("device", {})
        if recorded.get("name") != machine["device"]["name"]:
            raise ProfcastError(
                f"{path}: instance {instance} was measured on {recorded.get('name')!r}, this machine's device is "
                f"{machine['device']['name']!r}; one instance name per kind of machine (pass another --instance)"
            )
        for record in content["workloads"].values():
            if record.get("status") == RUNNING:
                record.update(status=FAILED, error=DIED_INSIDE)
        content.setdefault("runs", []).append({"started": now(), "suite": suite})
        return cls(folder, content)

    @property
    def workloads(self) -> dict[str, dict]:
        return self.content["workloads"]

    def status(self, name: str) -> str:
        return self.workloads.get(name, {}).get("status", PENDING)

    def record(self, name: str, **fields) -> None:
        """Set fields of one workload's record and write the manifest."""
        self.workloads.setdefault(name, {}).update(fields, updated=now())
        self.write()

    def write(self) -> None:
        """Write the whole manifest atomically: readers see the old file or the new one, never half.

        The new file is on the disk (fsync) before it replaces the old one, and the rename is made
        durable too, so a power loss cannot leave an empty manifest. A failed write leaves the old
        file in place and raises ``ManifestNotWritten``.
        """
        self.content["updated"] = now()
        partial = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, partial = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".partial", dir=self.path.parent)
            with os.fdopen(handle, "w") as stream:
                json.dump(self.content, stream, indent=2, sort_keys=True)
                stream.write("\n")
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(partial, self.path)
            _sync_folder(self.path.parent)
        except OSError as error:
            raise ManifestNotWritten(
                f"{self.path}: cannot write the suite manifest: the folder {why_not_writable(self.path.parent, error)}",
                is_disk_full(error),
            ) from None
        finally:
            if partial is not None and os.path.exists(partial):
                os.remove(partial)

    def noisy(self) -> list[str]:
        """Workloads done whose measurement was flagged noisy (``collect.quality``)."""
        return [name for name, record in self.workloads.items() if record.get("status") == DONE and record.get("noisy")]

    def counts(self) -> dict[str, int]:
        """How many workloads have each status."""
        counts: dict[str, int] = {}
        for record in self.workloads.values():
            counts[record.get("status", PENDING)] = counts.get(record.get("status", PENDING), 0) + 1
        return counts


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX: fsync the directory)."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def describe_machine(device: str, threads: int) -> dict:
    """The machine in the manifest: device name, count and memory, driver and runtime versions, torch, CPU model and cores."""
    import torch  # noqa: PLC0415  torch is optional (the torch extra) and slow to import

    machine = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "os": platform.platform(),
        "cpu": {"model": cpu_model(), "cores": os.cpu_count(), "torch_threads": threads, "memory_bytes": host_memory()},
    }
    if device == "cuda":
        properties = torch.cuda.get_device_properties(0)
        machine["device"] = {
            "kind": "rocm" if getattr(torch.version, "hip", None) else "cuda",
            "name": properties.name,
            "count": torch.cuda.device_count(),
            "memory_bytes": int(properties.total_memory),
            "runtime": torch.version.hip or torch.version.cuda,
            "driver": gpu_driver_version(),
        }
    elif device == "mps":
        machine["device"] = {
            "kind": "mps",
            "name": f"Apple {cpu_model()} GPU",
            "count": 1,
            "memory_bytes": host_memory(),  # unified memory: the GPU shares the host's
            "runtime": platform.mac_ver()[0] or None,
            "driver": None,
        }
    else:
        machine["device"] = {
            "kind": "cpu",
            "name": cpu_model(),
            "count": 1,
            "memory_bytes": host_memory(),
            "runtime": None,
            "driver": None,
        }
    return machine


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, sysctl on macOS), else what platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if platform.system() == "Darwin":
        found = subprocess.run(
            ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, check=False
        )
        if found.stdout.strip():
            return found.stdout.strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def host_memory() -> int | None:
    """The host's physical memory in bytes, where the OS says."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def gpu_driver_version() -> str | None:
    """The NVIDIA driver's version from nvidia-smi, when it is there."""

    if shutil.which("nvidia-smi") is None:
        return None
    found = subprocess.run(
        ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        check=False,
    )
    return found.stdout.strip().splitlines()[0] if found.returncode == 0 and found.stdout.strip() else None
