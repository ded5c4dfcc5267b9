"""The dependency policy: ranges in pyproject.toml, no TensorFlow in the base dependencies,
lock files that agree with both, and an install that leaves a user's own TensorFlow and numpy alone.

The install tests ask pip for a plan (``pip install --dry-run --report -``) against a throwaway
venv that "holds" the user's packages (their metadata only), with the python running the tests.
They need a package index and skip, saying so, when none answers.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
LOCK = ROOT / "requirements.lock"
LOWEST_LOCK = ROOT / "requirements-lowest.lock"
LOCKED_EXTRAS = ("cpu", "test", "ray")  # what `make lock` compiles and CI installs

# What the user already has: the standard (GPU-capable) TensorFlow build, and a numpy that is
# within sensreport's range but not the one in requirements.lock.
USER_TENSORFLOW = "2.21.0"
USER_NUMPY = "2.1.3"

NETWORK_ERROR = re.compile(
    r"NewConnectionError|Failed to establish a new connection|Temporary failure in name resolution|"
    r"Name or service not known|Network is unreachable|Max retries exceeded|ConnectTimeout|ReadTimeout|"
    r"Connection (?:refused|reset)|ProxyError|SSLError|No route to host",
)


def _is_tensorflow(name: str) -> bool:
    """Any TensorFlow distribution: tensorflow, tensorflow-cpu, -gpu, -intel, tf-nightly, ..."""
    n = canonicalize_name(name)
    return n in {"tensorflow", "tf-nightly"} or n.startswith(("tensorflow-", "tf-nightly-"))


def _requirements(extra: str | None = None) -> list[Requirement]:
    deps = PROJECT["dependencies"] if extra is None else PROJECT["optional-dependencies"][extra]
    return [Requirement(d) for d in deps]


def _pins(lock: Path) -> dict[str, Version]:
    pins = {}
    for line in lock.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)", line)
        if m:
            pins[canonicalize_name(m.group(1))] = Version(m.group(2))
    return pins


def _direct_requirements() -> list[Requirement]:
    return _requirements() + [r for extra in LOCKED_EXTRAS for r in _requirements(extra)]


# --- pyproject.toml ------------------------------------------------------------------------


def test_base_dependencies_hold_no_tensorflow_package():
    names = [r.name for r in _requirements()]
    assert not [n for n in names if _is_tensorflow(n)], names
    assert {"numpy", "keras"} <= {canonicalize_name(n) for n in names}


def test_extras_cpu_and_tf_pick_the_tensorflow_distribution():
    extras = PROJECT["optional-dependencies"]
    assert [canonicalize_name(r.name) for r in _requirements("cpu")] == ["tensorflow-cpu"]
    assert [canonicalize_name(r.name) for r in _requirements("tf")] == ["tensorflow"]
    for extra in ("cpu", "tf"):
        (req,) = _requirements(extra)
        assert req.specifier.contains(USER_TENSORFLOW) and not req.specifier.contains("3.0"), (extra, str(req))
    # Nothing else drags TensorFlow in: only those two extras name it.
    others = [str(r) for e in extras if e not in ("cpu", "tf") for r in _requirements(e) if _is_tensorflow(r.name)]
    assert not others


def test_every_dependency_is_a_range_with_a_lower_and_an_upper_bound():
    groups = {None: PROJECT["dependencies"], **PROJECT["optional-dependencies"]}
    for extra, deps in groups.items():
        for dep in deps:
            ops = {s.operator for s in Requirement(dep).specifier}
            assert ">=" in ops and "<" in ops and not ops & {"==", "===", "~="}, (extra, dep)


# --- the lock files ------------------------------------------------------------------------


def test_lock_pins_every_direct_dependency_within_its_range_with_hashes():
    text = LOCK.read_text()
    assert "uv pip compile pyproject.toml --extra cpu --extra test --extra ray --generate-hashes" in text
    pins = _pins(LOCK)
    for req in _direct_requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{name} is missing from {LOCK.name}: run `make lock`"
        assert req.specifier.contains(pins[name]), f"{LOCK.name} pins {name}=={pins[name]} outside {req}"
    assert "tensorflow" not in pins  # the CPU build only: tensorflow and tensorflow-cpu would overwrite each other
    # Every pinned line carries its hashes (pip --require-hashes refuses the file otherwise).
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 3)[-1])
    assert all("--hash=sha256:" in b for b in blocks if re.match(r"[A-Za-z0-9]", b))


def test_lowest_lock_holds_every_direct_dependency_at_its_lower_bound():
    assert "--resolution lowest-direct" in LOWEST_LOCK.read_text()
    pins = _pins(LOWEST_LOCK)
    for req in _direct_requirements():
        name = canonicalize_name(req.name)
        (lower,) = [Version(s.version) for s in req.specifier if s.operator == ">="]
        assert pins.get(name) == lower, f"{LOWEST_LOCK.name} has {name}=={pins.get(name)}, not {lower}: run `make lock`"


# --- installing beside the user's own packages -----------------------------------------------


def _venv_holding(path: Path, **packages: str) -> Path:
    """A venv whose site-packages holds these distributions (metadata only); its python."""
    venv.create(path, with_pip=False, symlinks=True)
    (site,) = path.glob("lib/python*/site-packages")
    for name, version in packages.items():
        info = site / f"{name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "INSTALLER").write_text("pip\n")
        (info / "RECORD").write_text("")
    return path / "bin" / "python"


def _plan(python: Path, spec: str) -> list[dict]:
    """pip's install plan for ``spec`` into the venv of ``python``; skips when no index answers."""
    cmd = [sys.executable, "-m", "pip", "--python", str(python), "install", "--dry-run", "--quiet", "--report", "-",
           "--no-input", "--disable-pip-version-check", "--timeout", "15", "--retries", "1", spec]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired:
        pytest.skip("no package index answered within 240 s (pip install --dry-run timed out)")
    if proc.returncode != 0:
        hit = NETWORK_ERROR.search(proc.stdout + proc.stderr)
        if hit:
            pytest.skip(f"no package index reachable (pip: {hit.group(0)}); the install plan needs one")
        pytest.fail(f"pip could not plan `{spec}` (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout)["install"]


@pytest.fixture(scope="module")
def user_venv(tmp_path_factory):
    """A user's venv: the standard `tensorflow` build (not -cpu) and a numpy within range."""
    return _venv_holding(tmp_path_factory.mktemp("user-venv") / "venv",
                         tensorflow=USER_TENSORFLOW, numpy=USER_NUMPY)


@pytest.mark.parametrize("extras", ["", "[tf]"], ids=["plain", "tf-extra"])
def test_install_beside_users_tensorflow_and_numpy_replaces_neither(user_venv, extras):
    plan = _plan(user_venv, f"{ROOT}{extras}")
    names = {canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"] for item in plan}
    assert "sensreport" in names
    assert not [n for n in names if _is_tensorflow(n)], f"the plan would install TensorFlow: {sorted(names)}"
    assert "numpy" not in names, f"the plan would replace numpy {USER_NUMPY} with {names.get('numpy')}"

    # The metadata pip built from this checkout: no TensorFlow unless an extra asks for one.
    (meta,) = [item["metadata"] for item in plan if canonicalize_name(item["metadata"]["name"]) == "sensreport"]
    requires = [Requirement(r) for r in meta.get("requires_dist", [])]
    base = [r for r in requires if r.marker is None or "extra" not in str(r.marker)]
    assert base and not [str(r) for r in base if _is_tensorflow(r.name)]
    assert {"cpu", "tf"} <= set(meta.get("provides_extra", []))
