# SPDX-License-Identifier: BSD-2-Clause
"""The package's PEP 517 build backend, in the source tree.

The package is pure Python, so building it means zipping shm_alloc/ with
its metadata into a wheel. Doing that here, with the standard library
only, makes ``pip install ./python`` work with no network: pip's build
isolation then has nothing to download (pyproject.toml requires nothing),
unlike setuptools or flit, which it would fetch from PyPI.

Hooks: build_wheel, build_sdist, build_editable (PEP 660) and their
get_requires_* (none). The metadata comes from the [project] table of
pyproject.toml (name, description, requires-python) and the version from
shm_alloc/__init__.py.
"""

import base64
import hashlib
import io
import os
import re
import tarfile
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "shm_alloc"
TAG = "py3-none-any"


def _read(name):
    with open(os.path.join(ROOT, name), encoding="utf-8") as f:
        return f.read()


def _project_field(text, key):
    """A string field of the [project] table (the file is ours: plain
    `key = "value"` lines)."""
    table = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    if not table:
        raise RuntimeError("pyproject.toml has no [project] table")
    match = re.search(r'^%s\s*=\s*"([^"]*)"\s*$' % re.escape(key), table.group(1), re.M)
    return match.group(1) if match else None


def _metadata():
    pyproject = _read("pyproject.toml")
    version = re.search(
        r'^__version__\s*=\s*"([^"]+)"', _read(os.path.join(PACKAGE, "__init__.py")), re.M
    ).group(1)
    lines = [
        "Metadata-Version: 2.1",
        "Name: " + _project_field(pyproject, "name"),
        "Version: " + version,
    ]
    summary = _project_field(pyproject, "description")
    if summary:
        lines.append("Summary: " + summary)
    requires = _project_field(pyproject, "requires-python")
    if requires:
        lines.append("Requires-Python: " + requires)
    readme = _read("README.md")
    lines.append("Description-Content-Type: text/markdown")
    return version, "\n".join(lines) + "\n\n" + readme


def _package_files():
    """(path in the archive, path on disk) of every module of the package."""
    found = []
    for directory, subdirs, files in os.walk(os.path.join(ROOT, PACKAGE)):
        subdirs[:] = sorted(d for d in subdirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                disk = os.path.join(directory, name)
                found.append((os.path.relpath(disk, ROOT).replace(os.sep, "/"), disk))
    return found


def _record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "%s,sha256=%s,%d" % (name, digest.decode(), len(data))


def _write_wheel(directory, entries):
    """entries: (name in the wheel, bytes). Adds the dist-info and RECORD."""
    version, metadata = _metadata()
    dist_info = "%s-%s.dist-info" % (PACKAGE, version)
    wheel = "Wheel-Version: 1.0\nGenerator: shm_alloc_build\nRoot-Is-Purelib: true\nTag: %s\n" % TAG
    entries = list(entries) + [
        (dist_info + "/METADATA", metadata.encode()),
        (dist_info + "/WHEEL", wheel.encode()),
        (dist_info + "/top_level.txt", (PACKAGE + "\n").encode()),
    ]
    record = [_record_line(name, data) for name, data in entries]
    record.append(dist_info + "/RECORD,,")
    entries.append((dist_info + "/RECORD", ("\n".join(record) + "\n").encode()))
    filename = "%s-%s-%s.whl" % (PACKAGE, version, TAG)
    stamp = time.localtime(max(time.time(), 315532800))[:6]
    with zipfile.ZipFile(os.path.join(directory, filename), "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            info = zipfile.ZipInfo(name, stamp)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    return filename


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    entries = []
    for name, disk in _package_files():
        with open(disk, "rb") as f:
            entries.append((name, f.read()))
    return _write_wheel(wheel_directory, entries)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    """A wheel whose .pth file puts this source tree on sys.path."""
    return _write_wheel(wheel_directory, [(PACKAGE + ".pth", (ROOT + "\n").encode())])


def build_sdist(sdist_directory, config_settings=None):
    version, metadata = _metadata()
    base = "%s-%s" % (PACKAGE, version)
    filename = base + ".tar.gz"
    names = ["pyproject.toml", "README.md", "_backend/shm_alloc_build.py"]
    names += [name for name, _ in _package_files()]
    for directory, subdirs, files in os.walk(os.path.join(ROOT, "tests")):
        subdirs[:] = sorted(d for d in subdirs if d != "__pycache__")
        names += sorted(
            os.path.relpath(os.path.join(directory, f), ROOT).replace(os.sep, "/")
            for f in files
            if f.endswith(".py")
        )
    with tarfile.open(os.path.join(sdist_directory, filename), "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            tar.add(os.path.join(ROOT, name), arcname=base + "/" + name, recursive=False)
        info = tarfile.TarInfo(base + "/PKG-INFO")
        data = metadata.encode()
        info.size = len(data)
        info.mtime = int(time.time())
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))
    return filename
