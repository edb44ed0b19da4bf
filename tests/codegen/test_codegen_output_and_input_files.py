"""Output paths of `generate -o` and `resolve -o` are checked before any work: one line, exit 2."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BoundedCli = Callable[..., Any]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["generate", "python", "-o", "{file}"],
            "knhk-otel generate: -o {file}: is an existing file; -o takes a folder",
        ),
        (["resolve", "-o", "{dir}"], "knhk-otel resolve: -o {dir}: is a folder; -o takes a file path"),
        (
            ["resolve", "-o", "{file}/x.yaml"],
            "knhk-otel resolve: -o {file}/x.yaml: {file} is a file, not a folder; "
            "choose a path under a folder",
        ),
        (
            ["generate", "python", "-o", "/proc/knhk-out"],
            "knhk-otel generate: -o /proc/knhk-out: cannot write in folder /proc (",
        ),
    ],
)
def test_an_unusable_output_is_refused_before_the_registry_is_read(
    args: list[str], expected: str, tmp_path: Path, bounded_cli: BoundedCli
) -> None:
    existing = tmp_path / "existing.txt"
    existing.write_text("keep me\n", encoding="utf-8")
    folder = tmp_path / "folder"
    folder.mkdir()
    filled = [a.format(file=existing, dir=folder) for a in args]
    result = bounded_cli(*filled, "-r", str(REPO_ROOT / "schema"), timeout=60)
    assert not result.timed_out
    assert result.code != 0
    line = result.one_line()
    assert line.startswith(expected.format(file=existing, dir=folder)), line
    assert existing.read_text(encoding="utf-8") == "keep me\n"


def test_params_and_target_files_that_are_not_utf8_are_one_line(
    tmp_path: Path, bounded_cli: BoundedCli
) -> None:
    params = tmp_path / "params.yaml"
    params.write_bytes(b'prefix: "caf\xe9"\n')
    result = bounded_cli(
        "generate",
        "python",
        "-r",
        str(REPO_ROOT / "schema"),
        "-o",
        str(tmp_path / "o"),
        "--params",
        str(params),
    )
    assert result.code == 1
    assert (
        result.one_line()
        == f"{params}: error[params]: not UTF-8 (byte 0xe9 at offset 12); save the file as UTF-8"
    )
    target = tmp_path / "targets" / "csv"
    target.mkdir(parents=True)
    (target / "target.yaml").write_bytes(b"files: []\n# caf\xe9\n")

    def generate_csv() -> Any:
        args = ["-t", str(tmp_path / "targets"), "-r", str(REPO_ROOT / "schema"), "-o", str(tmp_path / "o")]
        return bounded_cli("generate", "csv", *args)

    result = generate_csv()
    assert result.code == 1
    assert (
        "target.yaml: error[target_config]: not UTF-8 (byte 0xe9 at offset 15); save it as UTF-8"
        in result.one_line()
    )
    (target / "target.yaml").write_text("files: [\n", encoding="utf-8")
    result = generate_csv()
    assert result.code == 1
    assert (
        "target.yaml: error[target_config]: invalid YAML at line 2, column 1: expected the node content"
        in result.one_line()
    )
