"""tools.plan.outdir.sync: the tree a re-plan leaves is the tree a fresh write would leave."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tools.plan import outdir


def tree(root: Path) -> dict[str, bytes | None]:
    """Every entry under ``root``: files with their bytes, directories as None, links as their target."""
    found: dict[str, bytes | None] = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        if path.is_symlink():
            found[name] = b"-> " + os.readlink(path).encode()
        else:
            found[name] = path.read_bytes() if path.is_file() else None
    return found


WANTED = {"plan.json": b"{}\n", "hosts/a/etc/x.yml": b"x: 1\n", "hosts/a/etc/tls/ca.crt": b"ca\n", "hosts/b/y": b"y"}


def fresh(tmp_path: Path, wanted: dict[str, bytes]) -> dict[str, bytes | None]:
    root = tmp_path / "fresh"
    outdir.sync(root, wanted)
    return tree(root)


@pytest.mark.parametrize(
    "earlier",
    [
        {},
        {"hosts/a/etc/x.yml": b"x: 0\n"},
        {"hosts/gone/etc/old.yml": b"old", "hosts/a/stale": b"s"},
        {"hosts/b/y/inside": b"a directory where a file is wanted"},
        {"hosts/b": b"a file where a directory is wanted"},
        {**WANTED},
    ],
    ids=["new", "changed-file", "stale-host-and-file", "dir-where-file", "file-where-dir", "unchanged"],
)
def test_sync_leaves_the_tree_a_fresh_write_leaves(tmp_path: Path, earlier: dict[str, bytes]) -> None:
    root = tmp_path / "out"
    for name, content in earlier.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    outdir.sync(root, WANTED)
    assert tree(root) == fresh(tmp_path, WANTED)


def test_only_changed_files_are_written(tmp_path: Path) -> None:
    root = tmp_path / "out"
    wanted = dict(WANTED)
    assert outdir.sync(root, wanted) == len(WANTED)
    kept = (root / "hosts/b/y").stat().st_ino
    wanted["hosts/a/etc/x.yml"] = b"x: 2\n"
    assert outdir.sync(root, wanted) == 1
    assert (root / "hosts/b/y").stat().st_ino == kept
    assert (root / "hosts/a/etc/x.yml").read_bytes() == b"x: 2\n"


def test_a_symlink_in_the_tree_is_removed_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("not ours")
    root = tmp_path / "out"
    (root / "hosts").mkdir(parents=True)
    (root / "hosts/link").symlink_to(outside, target_is_directory=True)
    outdir.sync(root, WANTED)
    assert tree(root) == fresh(tmp_path, WANTED)
    assert (outside / "keep").read_text() == "not ours"


def test_the_current_directory_as_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    outdir.sync(Path("."), WANTED)
    assert outdir.sync(Path("."), WANTED) == 0
    assert tree(tmp_path) == fresh(tmp_path / "elsewhere", WANTED)


@pytest.mark.parametrize("name", ["/etc/passwd", "hosts/../../x", ""], ids=["absolute", "dot-dot", "empty"])
def test_a_name_outside_the_root_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="not a relative path inside"):
        outdir.sync(tmp_path / "out", {name: b"x"})
    assert not (tmp_path / "out").exists()
