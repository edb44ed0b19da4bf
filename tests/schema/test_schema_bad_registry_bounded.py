"""A hostile or broken registry gets a clear line naming the file and what to do, within a time and
memory bound, from every command that reads it — never a hang, a traceback or a silent success.

Each case runs the real CLI as a separate process (`bounded_cli`), so a hang is a timeout here and
the memory figure is that process's own peak RSS.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from knhk_otel.schema.yamlpos import MAX_FILE_BYTES, MAX_NODES

REPO_ROOT = Path(__file__).resolve().parents[2]
BoundedCli = Callable[..., Any]

SECONDS = 30.0  # a normal run takes about 2 s here; the hang this guards against never ends
RSS_MIB = 400.0  # a normal run peaks near 100 MiB; alias expansion used to grow without bound

#: Nine levels of nine aliases: about 300 bytes that expand to 9**9 (387 million) strings.
BILLION_LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)

COMMANDS: dict[str, list[str]] = {
    "check": ["check"],
    "resolve": ["resolve"],
    "stats": ["stats"],
    "diff": ["diff", "--baseline-registry", str(REPO_ROOT / "schema")],
    "generate": ["generate", "python", "-o", "out"],
    "live-check": ["live-check", "--input-source", "stdin"],
}


def _registry(root: Path, files: dict[str, str | bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


def _within_bounds(result: Any) -> None:
    assert not result.timed_out, f"still running after {SECONDS} s"
    assert result.seconds < SECONDS
    assert result.max_rss_mib < RSS_MIB, f"peak RSS {result.max_rss_mib:.0f} MiB"
    assert "Traceback" not in result.out + result.err
    assert "internal error" not in result.err


@pytest.mark.parametrize("command", list(COMMANDS))
def test_an_alias_bomb_is_refused_by_every_command(
    command: str, tmp_path: Path, bounded_cli: BoundedCli
) -> None:
    reg = _registry(tmp_path / "reg", {"manifest.yaml": "name: r\n", "bomb.yaml": BILLION_LAUGHS})
    assert len(BILLION_LAUGHS.encode()) < 350
    result = bounded_cli(*COMMANDS[command], "-r", str(reg), cwd=tmp_path, timeout=SECONDS)
    _within_bounds(result)
    assert result.code != 0
    first = result.err.splitlines()[0]
    assert first.startswith("reg/bomb.yaml:1:1: error[yaml_too_large]: YAML expands to more than ")
    assert f"{MAX_NODES:,} nodes" in first and "alias" in first


def test_a_file_over_the_size_limit_is_refused_without_reading_it_all(
    tmp_path: Path, bounded_cli: BoundedCli
) -> None:
    reg = _registry(tmp_path / "reg", {"manifest.yaml": "name: r\n"})
    with (reg / "huge.yaml").open("wb") as fh:
        fh.truncate(MAX_FILE_BYTES * 4)  # sparse: 32 MiB on paper, nothing on disk
    result = bounded_cli("check", "-r", str(reg), timeout=SECONDS)
    _within_bounds(result)
    assert result.code == 1
    assert result.err.splitlines()[0] == (
        f"{reg / 'huge.yaml'}: error[yaml_too_large]: file is larger than 8 MiB, the limit for a "
        "registry file; split it into several files"
    )


def test_a_missing_registry_is_one_line_naming_it(tmp_path: Path, bounded_cli: BoundedCli) -> None:
    result = bounded_cli("stats", "-r", str(tmp_path / "nowhere"), timeout=SECONDS)
    _within_bounds(result)
    assert result.code == 1
    nowhere = tmp_path / "nowhere"
    assert result.err.splitlines()[0] == (
        f"{nowhere}: error[file_unreadable]: registry folder {nowhere} does not exist"
    )


def test_an_empty_registry_is_a_warning_not_a_silent_success(tmp_path: Path, bounded_cli: BoundedCli) -> None:
    (tmp_path / "empty").mkdir()
    result = bounded_cli("check", "-r", "empty", cwd=tmp_path, timeout=SECONDS)
    _within_bounds(result)
    assert result.code == 0
    assert result.err.splitlines() == [
        "empty: warning[empty_registry]: registry folder empty holds no definition files "
        "(*.yaml, *.yml): nothing to check",
        "✔ empty: 0 files, 0 groups, 0 errors, 1 warnings",
    ]
    live = bounded_cli("live-check", "-r", "empty", "--input-source", "stdin", cwd=tmp_path, timeout=SECONDS)
    _within_bounds(live)
    assert live.code == 2
    assert "warning[empty_registry]" in live.err
    assert "the registry defines nothing" in live.err


def test_a_registry_folder_that_is_a_symlink_loop_is_named(tmp_path: Path, bounded_cli: BoundedCli) -> None:
    os.symlink(tmp_path / "b", tmp_path / "a")
    os.symlink(tmp_path / "a", tmp_path / "b")
    result = bounded_cli("check", "-r", "a", cwd=tmp_path, timeout=SECONDS)
    _within_bounds(result)
    assert result.code == 1
    assert result.err.splitlines()[0] == "a: error[file_unreadable]: registry folder a is a symlink loop"


def test_symlink_loops_inside_a_registry_are_read_once_and_named(
    tmp_path: Path, bounded_cli: BoundedCli
) -> None:
    reg = _registry(
        tmp_path / "reg",
        {
            "manifest.yaml": "name: r\n",
            "sub/a.yaml": "groups: []\n",
            "sub/deeper/b.yaml": "groups: []\n",
        },
    )
    os.symlink("..", reg / "sub" / "deeper" / "back")  # a folder loop
    os.symlink("loop2.yaml", reg / "loop1.yaml")  # a file loop
    os.symlink("loop1.yaml", reg / "loop2.yaml")
    result = bounded_cli("check", "-r", "reg", cwd=tmp_path, timeout=SECONDS)
    _within_bounds(result)
    assert result.code == 1
    lines = result.err.splitlines()
    assert (
        "reg/loop1.yaml: error[file_unreadable]: cannot read file: Too many levels of symbolic links" in lines
    )
    assert (
        "reg/sub/deeper/back: warning[symlink_loop]: folder reg/sub/deeper/back leads back to reg/sub "
        "(a symlink loop or a second link), already read: skipped (remove the link)"
    ) in lines


def test_two_registries_depending_on_each_other_name_the_chain(
    tmp_path: Path, bounded_cli: BoundedCli
) -> None:
    _registry(
        tmp_path / "a", {"manifest.yaml": "name: a\ndependencies:\n  - name: b\n    registry_path: ../b\n"}
    )
    _registry(
        tmp_path / "b", {"manifest.yaml": "name: b\ndependencies:\n  - name: a\n    registry_path: ../a\n"}
    )
    result = bounded_cli("resolve", "-r", "a", cwd=tmp_path, timeout=SECONDS)
    _within_bounds(result)
    assert result.code == 1
    assert result.err.splitlines()[0] == (
        "b/manifest.yaml:4:20: error[dependency_cycle]: registry b depends on a registry that depends "
        "on it: a -> b -> a; remove one of these dependencies"
    )


def test_invalid_utf8_names_the_place_of_the_bad_byte(tmp_path: Path, bounded_cli: BoundedCli) -> None:
    reg = _registry(
        tmp_path / "reg",
        {"manifest.yaml": "name: r\n", "latin1.yaml": "groups: []\n# caf\xe9\n".encode("latin-1")},
    )
    result = bounded_cli("generate", "python", "-r", str(reg), "-o", str(tmp_path / "out"), timeout=SECONDS)
    _within_bounds(result)
    assert result.code == 1
    assert result.err.splitlines()[0] == (
        f"{reg / 'latin1.yaml'}:2:6: error[file_encoding]: not UTF-8: byte 0xe9 at offset 16 "
        "(invalid continuation byte); save the file as UTF-8"
    )
    assert not (tmp_path / "out").exists()


def test_a_policy_file_neither_python_nor_rego_is_told_what_policies_are(
    tmp_path: Path, bounded_cli: BoundedCli
) -> None:
    policy = tmp_path / "naming.txt"
    policy.write_text("package after_resolution\n", encoding="utf-8")
    result = bounded_cli("check", "-r", str(REPO_ROOT / "schema"), "--policy", str(policy), timeout=SECONDS)
    _within_bounds(result)
    assert result.code == 1
    assert result.err.splitlines()[0] == (
        f"{policy}: error[policy_file_invalid]: not a policy file: policies are Python files "
        "(FILE.py exposing `POLICIES` or `policy_*` functions) or Weaver's Rego policies (FILE.rego, "
        "or a folder of them)"
    )


def test_a_rego_policy_runs_bounded(tmp_path: Path, bounded_cli: BoundedCli) -> None:
    policy = tmp_path / "naming.rego"
    policy.write_text(
        'package after_resolution\n\nimport rego.v1\n\ndeny contains {"id": "no_spans", "level": '
        '"violation", "message": "no spans allowed"} if {\n\tcount(input.registry.spans) > 0\n}\n',
        encoding="utf-8",
    )
    result = bounded_cli("check", "-r", str(REPO_ROOT / "schema"), "--policy", str(policy), timeout=SECONDS)
    _within_bounds(result)
    assert result.code == 1
    assert "error[no_spans]: no spans allowed" in result.err
