"""Where the reference data of other projects lives for tests and benches (it is never in the repo).

One setting, `KNHK_REFERENCE_DIR`; by default `../shared/reference` beside the repository. When
a piece is absent, tests skip and benches print no figure, each with one line saying what did not
run and how to get the data; `KNHK_REQUIRE_REFERENCE=1` (set by `.ci/run`) makes the absence fail.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ENV_DIR = "KNHK_REFERENCE_DIR"
ENV_REQUIRE = "KNHK_REQUIRE_REFERENCE"
HOW_TO_GET = f"run `make reference` (needs internet) or set {ENV_DIR}"
#: Every message about absent data starts with this, so a test run can count what it skipped.
ABSENT_PREFIX = "reference data absent"

# The pinned pieces `make reference` fetches, as paths under the reference directory.
SEMCONV_MODEL = "semconv-v1.44.0/model"
SEMCONV_POLICIES = "semconv-v1.44.0/policies"
WEAVER_SCHEMAS = "weaver"
WEAVER_TESTS = "weaver-tests"
GRAFANA_SCHEMAS = "grafana"
OTELCOL_SCHEMA = "otelcol/otelbin-collector.schema.json"
COMPOSE_SCHEMA = "compose/compose-spec.json"


@dataclass(frozen=True)
class ReferenceData:
    """The reference directory chosen for this run, and whether its absence is an error."""

    root: Path
    required: bool
    configured: bool  # True when KNHK_REFERENCE_DIR set it, False for the default beside the repo

    @classmethod
    def from_env(cls, repo_root: Path, environ: Mapping[str, str] | None = None) -> ReferenceData:
        env = os.environ if environ is None else environ
        configured = bool(env.get(ENV_DIR))
        # resolve first: the parent of a relative "." is "." itself, not the folder above the repo
        root = Path(env[ENV_DIR]) if configured else repo_root.resolve().parent / "shared" / "reference"
        required = env.get(ENV_REQUIRE, "").strip().lower() in ("1", "true", "yes")
        return cls(root=root.expanduser().resolve(), required=required, configured=configured)

    def path(self, piece: str) -> Path:
        return self.root / piece

    def find(self, piece: str) -> Path | None:
        """The piece's path when it is there (a folder must not be empty), else None."""
        path = self.path(piece)
        if path.is_file() or (path.is_dir() and any(path.iterdir())):
            return path
        return None

    def absent(self, piece: str, what: str, outcome: str = "skipped") -> str:
        """The one line that says `what` did not run because `piece` is missing, and how to get it."""
        where = f"{ENV_DIR}={self.root}" if self.configured else f"default {self.root}"
        return f"{ABSENT_PREFIX}: {what} {outcome}: no {piece} under {where}; {HOW_TO_GET}"

    def require(self, piece: str, what: str) -> Path:
        """For tests: the piece's path, or skip with `absent()` (fail when the data is required)."""
        import pytest  # only tests call this; benches and the package itself never need pytest

        found = self.find(piece)
        if found is not None:
            return found
        if self.required:
            line = self.absent(piece, what, f"failed ({ENV_REQUIRE}=1: absent reference data is a failure)")
            pytest.fail(line, pytrace=False)
        pytest.skip(self.absent(piece, what))


#: Every piece, and what of the suite and the benches reads it.
PIECES = {
    SEMCONV_MODEL: "semconv conformance tests, check/generate benches",
    SEMCONV_POLICIES: "semconv Rego policy tests",
    WEAVER_SCHEMAS: "cross-checks against Weaver's JSON Schemas",
    WEAVER_TESTS: "Weaver conformance tests",
    GRAFANA_SCHEMAS: "dashboard schema tests",
    OTELCOL_SCHEMA: "collector config schema tests",
    COMPOSE_SCHEMA: "compose file schema tests",
}


def main() -> int:
    """`python -m knhk_otel.harness.reference [REPO]`: say which pieces are there (end of `make test`)."""
    repo = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()
    data = ReferenceData.from_env(repo)
    absent = [piece for piece in PIECES if data.find(piece) is None]
    if not absent:
        print(f"reference data: all {len(PIECES)} pieces present under {data.root}")
        return 0
    verdict = "FAIL (required)" if data.required else "are SKIPPED"
    print(f"reference data: {len(absent)} of {len(PIECES)} pieces absent under {data.root}; {HOW_TO_GET}")
    for piece in absent:
        print(f"  {piece}: tests and benches reading it ({PIECES[piece]}) {verdict}")
    return 1 if data.required else 0


if __name__ == "__main__":
    sys.exit(main())
