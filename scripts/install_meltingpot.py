"""Install the Melting Pot extra (Shimmy + dm-meltingpot) into the running interpreter's environment.

Run by ``make install`` (hence ``make demo`` / ``make test``) with the virtual environment's
python, after the main install::

    .venv/bin/python scripts/install_meltingpot.py            # what make runs
    .venv/bin/python scripts/install_meltingpot.py --full     # insist on the scenario bots

What it does:

1. If ``dm-meltingpot`` and ``shimmy`` are already installed at the pinned versions, nothing
   (with ``--full``: unless the installed copy lacks the bots, then it reinstalls).
2. Otherwise the normal install, ``pip install "shimmy[meltingpot]==2.0.1" dm-meltingpot==2.4.1``
   with the project's constraints. dm-meltingpot is only published as an sdist whose build
   downloads the asset archive ``meltingpot-assets-2.3.0.tar.gz`` (the scenario bots) from
   storage.googleapis.com, or takes it from the system temp folder if it is already there.
   The archive's URL is probed first with a short timeout.
3. When the archive can be had neither way (no network, a registry-only mirror), dm-meltingpot
   is built against a placeholder archive: every substrate works, the scenario bots
   (``commons_harvest__open_0`` / ``_1`` evaluation) do not. One line says so and how to get
   the full install later. The placeholder wheel is built with ``--no-cache-dir``, so it never
   lands in pip's cache, and a later online install is the normal one.

pip's own output goes to ``<venv>/meltingpot-install.log`` and is shown only on failure; the
outcome and the time taken are printed on one line and recorded in
``<venv>/meltingpot-install.json``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

SHIMMY_VERSION = "2.0.1"
MELTINGPOT_VERSION = "2.4.1"
ASSETS_VERSION = "2.3.0"
ASSETS_NAME = f"meltingpot-assets-{ASSETS_VERSION}.tar.gz"
ASSETS_URL = f"https://storage.googleapis.com/dm-meltingpot/{ASSETS_NAME}"
REQUIREMENTS = [f"shimmy[meltingpot]=={SHIMMY_VERSION}", f"dm-meltingpot=={MELTINGPOT_VERSION}"]

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "constraints.txt"
PREFIX = Path(sys.prefix)
LOG = PREFIX / "meltingpot-install.log"
RECORD = PREFIX / "meltingpot-install.json"
TAG = "[install]"

#: what pip's log shows when dm-meltingpot's build could not download the archive
ASSET_FAILURE_MARKERS = ("urlopen error", "URLError", "downloading assets", ASSETS_NAME, "storage.googleapis.com")
#: what a placeholder archive holds
PLACEHOLDER_NOTE = "placeholder: the Melting Pot asset archive was not available when this copy was built"


def short_path(path: str | Path) -> str:
    """``path`` relative to the working directory when it lies below it."""
    rel = os.path.relpath(path)
    return str(path) if rel.startswith("..") else rel


def say(msg: str) -> None:
    print(f"{TAG} {msg}", flush=True)


def installed_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def meltingpot_dir() -> Path | None:
    spec = importlib.util.find_spec("meltingpot")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def bots_installed() -> bool:
    """Whether the installed copy holds the scenario bots (not the placeholder)."""
    root = meltingpot_dir()
    models = root / "assets" / "saved_models" if root else None
    return bool(models and models.is_dir() and any(p.is_dir() for p in models.iterdir()))


def already_installed() -> bool:
    return (
        installed_version("dm-meltingpot") == MELTINGPOT_VERSION
        and installed_version("shimmy") == SHIMMY_VERSION
        and meltingpot_dir() is not None
        and importlib.util.find_spec("shimmy") is not None
    )


def local_archive() -> Path | None:
    """The real asset archive in the system temp folder (where dm-meltingpot's build looks), if any."""
    path = Path(tempfile.gettempdir()) / ASSETS_NAME
    if not path.is_file():
        return None
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                parts = member.name.strip("./").split("/")
                if len(parts) >= 3 and parts[:2] == ["assets", "saved_models"] and parts[2] != "README.txt":
                    return path  # assets/saved_models/<bot>/...: a real archive, not a placeholder
    except (tarfile.TarError, OSError, EOFError):
        pass
    return None


def archive_reachable(timeout: float) -> bool:
    request = urllib.request.Request(ASSETS_URL, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return 200 <= response.status < 400
    except (urllib.error.URLError, OSError, ValueError):
        return False


def pip(args: list[str], env: dict[str, str] | None = None) -> bool:
    """Runs pip with the project's constraints; output appended to the log. Returns success."""
    cmd = [sys.executable, "-m", "pip", *args, "--disable-pip-version-check"]
    if args[0] in ("install", "wheel"):
        cmd += ["-c", str(CONSTRAINTS)]
    full_env = dict(os.environ, PIP_CONSTRAINT=str(CONSTRAINTS), **(env or {}))
    with open(LOG, "a") as log:
        log.write(f"\n$ {' '.join(cmd)}\n")
        log.flush()
        result = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env, check=False)
    return result.returncode == 0


def log_tail(n: int = 25) -> str:
    try:
        return "\n".join(LOG.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def normal_install(archive_in_tmp: bool) -> bool:
    """pip's ordinary install. Unless the real archive is in the temp folder, the build gets a
    fresh temp folder, so that a stray placeholder archive there is never picked up."""
    if archive_in_tmp:
        return pip(["install", "-q", *REQUIREMENTS])
    with tempfile.TemporaryDirectory(prefix="meltingpot-build-") as tmp:
        return pip(["install", "-q", *REQUIREMENTS], env={"TMPDIR": tmp})


def placeholder_install() -> bool:
    """Builds dm-meltingpot against a placeholder asset archive, then installs it and Shimmy."""
    work = Path(tempfile.mkdtemp(prefix="meltingpot-offline-"))
    try:
        stage = work / "stage" / "assets" / "saved_models"
        stage.mkdir(parents=True)
        (stage / "README.txt").write_text(PLACEHOLDER_NOTE + "\n")
        with tarfile.open(work / ASSETS_NAME, "w:gz") as tar:
            tar.add(work / "stage" / "assets", arcname="assets")
        wheels = work / "wheels"
        # the isolated build's tempfile.gettempdir() follows TMPDIR, where the build looks first
        built = pip(
            ["wheel", "-q", "--no-deps", "--no-cache-dir", "-w", str(wheels), f"dm-meltingpot=={MELTINGPOT_VERSION}"],
            env={"TMPDIR": str(work)},
        )
        if not built:
            return False
        wheel = next(wheels.glob("dm_meltingpot-*.whl"), None)
        if wheel is None:
            return False
        return pip(["install", "-q", str(wheel), f"shimmy[meltingpot]=={SHIMMY_VERSION}"])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def import_check() -> str | None:
    """Imports a substrate in a fresh interpreter (TensorFlow's start-up chatter discarded); None if fine."""
    code = (
        "import meltingpot.substrate as s, shimmy; "
        "assert 'commons_harvest__open' in s.SUBSTRATES"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if result.returncode == 0:
        return None
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit status {result.returncode}"


def record(mode: str, seconds: float) -> None:
    data = {
        "mode": mode,
        "seconds": round(seconds, 1),
        "dm-meltingpot": MELTINGPOT_VERSION,
        "shimmy": SHIMMY_VERSION,
        "assets": ASSETS_NAME,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    try:
        RECORD.write_text(json.dumps(data, indent=2) + "\n")
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true",
                        help="require the asset archive (scenario bots); reinstall a substrate-only copy")
    parser.add_argument("--timeout", type=float, default=15.0,
                        help="seconds to wait for the asset archive's server (default 15)")
    args = parser.parse_args(argv)

    if already_installed() and (not args.full or bots_installed()):
        return 0

    start = time.monotonic()
    LOG.write_text(f"install_meltingpot.py {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    archive = local_archive()
    if archive is not None:
        source = f"the archive in {archive.parent}"
    elif archive_reachable(args.timeout):
        source = "storage.googleapis.com"
    else:
        source = None

    if source is None and args.full:
        say(f"cannot fetch {ASSETS_URL} (no network?). Put {ASSETS_NAME} in {tempfile.gettempdir()} "
            f"and run this again, or run it with network access.")
        return 1

    say(f"installing Melting Pot (dm-meltingpot {MELTINGPOT_VERSION}, shimmy {SHIMMY_VERSION}, TensorFlow); "
        "this takes a few minutes the first time")
    if source is not None:
        mode = "full"
        if already_installed():  # --full over a substrate-only copy: rebuild dm-meltingpot
            ok = pip(["uninstall", "-q", "-y", "dm-meltingpot"]) and normal_install(archive is not None)
        else:
            ok = normal_install(archive is not None)
        if not ok and not args.full and any(m in log_tail(200) for m in ASSET_FAILURE_MARKERS):
            mode, ok = "substrates-only", placeholder_install()  # the download broke off mid-way
    else:
        mode, ok = "substrates-only", placeholder_install()

    seconds = time.monotonic() - start
    if not ok:
        say(f"FAILED after {seconds:.0f} s; the end of {LOG}:")
        print(log_tail(), file=sys.stderr)
        return 1
    problem = import_check()
    if problem is not None:
        say(f"installed, but importing Melting Pot fails: {problem} (full log: {LOG})")
        return 1
    record(mode, seconds)
    command = f"{short_path(sys.executable)} {short_path(Path(__file__).resolve())} --full"
    if mode == "full":
        say(f"Melting Pot installed with its scenario bots (assets from {source}) in {seconds:.0f} s")
    else:
        say(
            f"Melting Pot installed WITHOUT its asset archive ({ASSETS_URL} unreachable) in {seconds:.0f} s: "
            f"all substrates work, the scenario bots do not (no commons_harvest__open_0/_1 evaluation); "
            f"for the full install later run `{command}` with network access, or put {ASSETS_NAME} in "
            f"{tempfile.gettempdir()} and run that command."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
