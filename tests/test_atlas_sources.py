"""data=neusight_kernels and data=aiconfigurator: pinned files checked against the manifest, cached, offline stop."""

from __future__ import annotations

import hashlib
import io
import urllib.error
from pathlib import Path

import pytest

from profcast.atlas.__main__ import main
from profcast.cli import exit_code
from profcast.config import instantiate_option
from profcast.errors import ProfcastError
from profcast.ingest.pinned_files import AICONFIGURATOR, ManifestEntry, PinnedFiles
from tests.conftest import compose_train

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


class Response(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def small_pinned(tmp_path, files: dict) -> PinnedFiles:
    """A pinned set of ``files`` (path -> bytes) with its own manifest."""
    manifest = tmp_path / "MANIFEST.sha256"
    manifest.write_text("".join(f"{hashlib.sha256(b).hexdigest()}  {len(b)}  {p}\n" for p, b in files.items()))
    return PinnedFiles(name="demo", repo="owner/demo", commit="a" * 40, manifest=manifest, repo_root="sub")


def test_cached_download_is_verified_and_reused(tmp_path, monkeypatch):
    files = {"systems/x.yaml": b"gpu: {}\n", "LICENSE": b"licence"}
    pinned = small_pinned(tmp_path, files)
    fetched = []

    def serve(url, timeout=None):
        fetched.append(url)
        return Response(files[url.split("/sub/", 1)[1]] if "/sub/" in url else b"??")

    monkeypatch.setattr("urllib.request.urlopen", serve)
    monkeypatch.setenv("PROFCAST_CACHE_DIR", str(tmp_path / "cache"))
    folder = pinned.folder()
    assert folder == tmp_path / "cache" / "demo" and (folder / "systems" / "x.yaml").read_bytes() == b"gpu: {}\n"
    assert len(fetched) == 2 and fetched[0].startswith("https://raw.githubusercontent.com/owner/demo/" + "a" * 40)
    pinned.folder()  # everything cached: nothing fetched again
    assert len(fetched) == 2


def test_offline_is_one_line_naming_url_and_folder(tmp_path, monkeypatch):
    def offline(url, timeout=None):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    monkeypatch.setenv("PROFCAST_CACHE_DIR", str(tmp_path))
    with pytest.raises(ProfcastError) as raised:
        AICONFIGURATOR.folder()
    message = str(raised.value)
    assert "\n" not in message and "cannot download the aiconfigurator files" in message
    assert "raw.githubusercontent.com/ai-dynamo/aiconfigurator/095f58a51c4c" in message
    assert str(tmp_path / "aiconfigurator") in message
    assert not any(p.is_file() for p in tmp_path.rglob("*"))  # nothing half-written


def test_manifest_mismatch_is_one_line_and_nothing_written(tmp_path, capsys):
    folder = tmp_path / "mine"
    (folder / "systems").mkdir(parents=True)
    (folder / "systems" / "x.yaml").write_bytes(b"gpu: {}\n")
    pinned = small_pinned(tmp_path, {"systems/x.yaml": b"gpu: {}\n"})
    assert pinned.folder(folder) == folder
    (folder / "systems" / "x.yaml").write_bytes(b"gpu: {}\n".replace(b"{", b"["))  # same size, other bytes
    with pytest.raises(ProfcastError, match=r"x\.yaml: SHA-256 .* manifest mismatch"):
        pinned.folder(folder)
    (folder / "systems" / "x.yaml").write_bytes(b"gpu")
    with pytest.raises(ProfcastError, match=r"x\.yaml: 3 bytes, but systems/x\.yaml .* has 8 \(manifest mismatch\)"):
        pinned.folder(folder)


def test_shipped_manifests_are_the_shared_copies():
    from profcast.ingest.pinned_files import NEUSIGHT_KERNELS, read_manifest

    for pinned, shared in (
        (AICONFIGURATOR, "aiconfigurator/MANIFEST.sha256"),
        (NEUSIGHT_KERNELS, "neusight/MANIFEST-kernels.sha256"),
    ):
        entries = pinned.entries()
        assert entries and all(isinstance(e, ManifestEntry) and len(e.sha256) == 64 for e in entries)
        if (SHARED / shared).is_file():
            assert read_manifest(SHARED / shared) == entries


def test_data_options_compose_and_refuse_training():
    cfg = compose_train(["data=aiconfigurator", "data.path=/nowhere"])
    data = instantiate_option("data", cfg.data, "aiconfigurator")
    assert data.describe() == "aiconfigurator kernel timings (/nowhere)"
    with pytest.raises(ProfcastError, match="data=aiconfigurator holds kernel timings .* not job profiles"):
        data.load()
    with pytest.raises(ProfcastError, match="/nowhere: no such folder; expected the aiconfigurator files"):
        data.load_kernels()


@pytest.mark.skipif(not (SHARED / "aiconfigurator").is_dir(), reason="../shared/data/aiconfigurator absent")
def test_shared_copy_verifies_and_loads():
    cfg = compose_train(["data=aiconfigurator", f"data.path={SHARED / 'aiconfigurator'}"])
    atlas = instantiate_option("data", cfg.data, "aiconfigurator").load_kernels()
    assert set(atlas.kernels["source"].astype(str)) == {"aiconfigurator"} and len(atlas.collectives) > 0


def test_atlas_command_takes_a_source_name(tmp_path, monkeypatch, capsys):
    def offline(url, timeout=None):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    monkeypatch.setenv("PROFCAST_CACHE_DIR", str(tmp_path / "cache"))
    plot = tmp_path / "c.png"
    assert exit_code(main, ["--data", "aiconfigurator", "--plot", str(plot)]) == 2
    assert "cannot download the aiconfigurator files" in capsys.readouterr().err and not plot.exists()
