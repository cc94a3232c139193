"""Public files pinned to one commit of their repository: verified against a shipped manifest, downloaded once, cached.

``PinnedFiles`` names a repository, a commit, where the files sit in it and the manifest shipped with
the package (``data/*.sha256``: SHA-256, size and path of every file). ``folder()`` gives a folder
whose files all match the manifest: the user's own (read as it is) or the cache
(``$PROFCAST_CACHE_DIR/<name>`` or ``~/.cache/profcast/<name>``), downloading what it lacks. Every
failure is one line: a manifest mismatch names the file; a download that cannot reach the network
names the URL and where to put the files by hand (the offline stop).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from profcast.errors import ProfcastError
from profcast.ingest.downloads import CACHE_ENV_VAR, fetch, make_folder, write_atomically

log = logging.getLogger(__name__)

DATA = Path(__file__).resolve().parent / "data"
NEUSIGHT_REPO = "sitar-lab/NeuSight"
NEUSIGHT_COMMIT = "6945927d9afcca2b9daf021f8395e53edc5b4eef"  # 2025-06-23


@dataclass(frozen=True)
class ManifestEntry:
    """One file of the pinned commit: its SHA-256, size in bytes and repository path."""

    sha256: str
    size: int
    path: str


def read_manifest(path: Path) -> list[ManifestEntry]:
    """The manifest's entries (lines ``<sha256>  <size>  <path>``)."""
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(None, 2)
        if len(fields) != 3 or len(fields[0]) != 64 or not fields[1].isdigit():
            raise ProfcastError(f"{path}: line {number} is not '<sha256>  <size>  <path>'")
        entries.append(ManifestEntry(fields[0].lower(), int(fields[1]), fields[2].strip()))
    return entries


@dataclass(frozen=True)
class PinnedFiles:
    """A set of files of one repository commit, as its manifest lists them."""

    name: str  # the cache folder's name, and what errors call the set
    repo: str  # owner/name on GitHub
    commit: str
    manifest: Path
    repo_root: str = ""  # where the manifest's paths sit in the repository
    root_files: tuple = ()  # manifest paths that sit at the repository's top instead (a licence)

    def entries(self) -> list[ManifestEntry]:
        """The manifest's entries."""
        return read_manifest(self.manifest)

    def url(self, path: str) -> str:
        """The raw-file URL of one manifest path at the pinned commit."""
        inside = path if path in self.root_files or not self.repo_root else f"{self.repo_root}/{path}"
        return f"https://raw.githubusercontent.com/{self.repo}/{self.commit}/{inside}"

    def cache_dir(self) -> Path:
        """``$PROFCAST_CACHE_DIR/<name>`` or ``~/.cache/profcast/<name>``."""
        base = Path(os.environ[CACHE_ENV_VAR]).expanduser() if os.environ.get(CACHE_ENV_VAR) else None
        return (base or Path.home() / ".cache" / "profcast") / self.name

    def folder(self, path=None, timeout: float = 10, wanted=None) -> Path:
        """A folder holding the manifest's files (``wanted(entry)`` picks some), each verified before use.

        ``path``: the user's folder, read as it is (files it lacks are left out, not downloaded); without
        it the cache, where missing files are downloaded first.
        """
        entries = [e for e in self.entries() if wanted is None or wanted(e)]
        if path is None:
            folder = self.cache_dir()
            absent = [e for e in entries if not (folder / e.path).is_file()]
            if absent:
                make_folder(folder)
                self.download(folder, absent, timeout)
        else:
            folder = Path(str(path)).expanduser()
            if not folder.is_dir():
                raise ProfcastError(f"{folder}: no such folder; expected the {self.name} files ({self.pinned()})")
        present = [e for e in entries if (folder / e.path).is_file()]
        if not present:
            raise ProfcastError(f"{folder}: holds none of the {self.name} files; put {self.pinned()} there")
        for entry in present:  # every byte checked before any file is parsed
            self.verify(folder / entry.path, entry)
        if len(present) < len(entries):
            log.info("%s: %d of %d %s files absent; reading the rest", folder, len(entries) - len(present),
                     len(entries), self.name)  # fmt: skip
        return folder

    def download(self, folder: Path, entries: list[ManifestEntry], timeout: float = 10) -> None:
        """Download ``entries`` into ``folder``, each verified before it is written (a whole file or none)."""
        for entry in entries:
            url = self.url(entry.path)
            data = fetch(
                url,
                timeout,
                lambda url, reason: (
                    f"cannot download the {self.name} files: {url} failed ({reason}); to install them by hand, "
                    f"put {self.pinned()} into {folder}"
                ),
            )
            self.check(data, entry, url, "not saved")
            write_atomically(folder / entry.path, lambda staging, data=data: staging.write_bytes(data))

    def verify(self, path: Path, entry: ManifestEntry) -> None:
        """Refuse a file whose size or SHA-256 differs from the manifest (one line naming it)."""
        try:
            data = path.read_bytes()
        except OSError as error:
            raise ProfcastError(f"{path}: cannot be read ({error.strerror or error})") from None
        self.check(data, entry, str(path), "delete it to download it again, or restore the original file")

    def check(self, data: bytes, entry: ManifestEntry, where: str, consequence: str) -> None:
        """Refuse ``data`` unless it is ``entry``'s bytes."""
        if len(data) != entry.size:
            raise ProfcastError(
                f"{where}: {len(data)} bytes, but {entry.path} of {self.repo} commit {self.commit[:12]} has "
                f"{entry.size} (manifest mismatch); {consequence}"
            )
        actual = hashlib.sha256(data).hexdigest()
        if actual != entry.sha256:
            raise ProfcastError(
                f"{where}: SHA-256 {actual[:16]}... does not match {entry.path} of {self.repo} commit "
                f"{self.commit[:12]} ({entry.sha256[:16]}..., manifest mismatch); {consequence}"
            )

    def pinned(self) -> str:
        """The files in words: which repository, commit and folder."""
        where = f"{self.repo_root}/ of " if self.repo_root else ""
        return f"{where}github.com/{self.repo} commit {self.commit[:12]} (paths as in {self.manifest.name})"


NEUSIGHT_LABELS = PinnedFiles(  # data=neusight (ingest/neusight_data.py)
    name="neusight", repo=NEUSIGHT_REPO, commit=NEUSIGHT_COMMIT, manifest=DATA / "neusight-MANIFEST.sha256"
)
NEUSIGHT_KERNELS = PinnedFiles(
    name="neusight",  # the same cache as data=neusight's label files: one repository layout
    repo=NEUSIGHT_REPO,
    commit=NEUSIGHT_COMMIT,
    manifest=DATA / "neusight-kernels-MANIFEST.sha256",
)
AICONFIGURATOR = PinnedFiles(
    name="aiconfigurator",
    repo="ai-dynamo/aiconfigurator",
    commit="095f58a51c4ca8e61b66ec108d86f223f8d559ce",  # 2026-08-21
    manifest=DATA / "aiconfigurator-MANIFEST.sha256",
    repo_root="aic-core/src/aiconfigurator_core",
    root_files=("LICENSE",),
)
