"""yamllint over every YAML file of the deployment (settings: tests/deploy/yamllint.yaml)."""

from __future__ import annotations

from pathlib import Path

from yamllint import linter
from yamllint.config import YamlLintConfig

from tests.deploy.manifests import REPO

HERE = Path(__file__).resolve().parent
FOLDERS = (REPO / "deploy", REPO / "docker", HERE)


def yaml_files() -> list[Path]:
    return sorted(p for folder in FOLDERS for p in folder.rglob("*") if p.suffix in (".yaml", ".yml"))


def test_yaml_is_clean() -> None:
    config = YamlLintConfig(file=str(HERE / "yamllint.yaml"))
    files = yaml_files()
    assert len(files) >= 15
    problems = [f"{path.relative_to(REPO)}:{p.line}:{p.column}: {p.message}"
                for path in files for p in linter.run(path.read_text(), config, str(path))]
    assert not problems, "\n".join(problems)
