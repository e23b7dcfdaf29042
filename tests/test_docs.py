"""The README and docs/ stay readable and correct: every relative link and #anchor
resolves, every config key is documented, the generated configuration page is current,
the README stays short, and every `rlheals` command's help names its docs page."""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
import yaml

from rlheals import cli, config, docs_config

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

_FENCE = re.compile(r"^(```|~~~).*?^\1\s*$", re.M | re.S)
_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code (links there are not links)."""
    return _CODE.sub("", _FENCE.sub("", text))


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, markup and punctuation dropped,
    spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").strip().lower()
    out = []
    for ch in text:
        if ch in " -_" or ch.isalnum() or unicodedata.category(ch).startswith("L"):
            out.append("-" if ch == " " else ch)
    return "".join(out)


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in _FENCE.sub("", path.read_text()).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = github_slug(m.group(1))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def links(path: Path) -> list[str]:
    return [m.group(1) for m in _LINK.finditer(_prose(path.read_text()))]


def test_slugs_follow_github():
    assert github_slug("Several processes or GPUs") == "several-processes-or-gpus"
    assert github_slug("`rl`") == "rl"
    assert github_slug("Sets are kept apart by problem, not by cards") == "sets-are-kept-apart-by-problem-not-by-cards"
    assert github_slug("Columns of `results/tables/eval.csv`") == "columns-of-resultstablesevalcsv"
    assert github_slug("SmolLM2-135M-Instruct") == "smollm2-135m-instruct"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path):
    problems = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            problems.append(f"{target}: {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest} does not exist")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert not problems, f"{page.relative_to(ROOT)}:\n  " + "\n  ".join(problems)


def test_every_docs_page_links_back_to_the_readme():
    hand_written = [p for p in (ROOT / "docs").glob("*.md")]
    assert hand_written
    for page in hand_written:
        assert "../README.md" in links(page), f"{page.name} has no link back to the README"


def test_readme_is_short_and_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert len(text) <= 15_000, f"README.md is {len(text)} characters; move detail into docs/"
    head = text[:3000]
    assert "make run" in head and "make test" in head


def test_readme_links_every_docs_page():
    readme = set(links(ROOT / "README.md"))
    for page in (ROOT / "docs").glob("*.md"):
        assert f"docs/{page.name}" in readme, f"README.md does not link docs/{page.name}"


def test_every_config_key_is_documented():
    page = (ROOT / "docs" / "configuration.md").read_text()
    keys = docs_config.all_key_paths()
    assert {"seed", "replicates", "model", "sft", "rl", "evaluation", "compute", "edits"} <= {k.split(".")[0].split("[")[0] for k in keys}
    missing = [k for k in keys if f"`{k}`" not in page]
    assert not missing, f"docs/configuration.md lacks {missing}: run python -m rlheals.docs_config"


def test_every_config_key_has_a_description():
    missing = [p for p, node in docs_config.iter_keys(config.load_schema()) if not node.get("description")]
    assert not missing, f"rlheals/schemas/config.schema.yaml: no description for {missing}"


def test_configuration_page_is_generated_from_the_schema():
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == docs_config.render(), "docs/configuration.md is out of date: run python -m rlheals.docs_config"


def test_rerun_column_follows_the_rules():
    reads = docs_config.rule_reads()
    assert docs_config.rules_reading("sft.lr", reads) == ["sft"]
    assert docs_config.rules_reading("data.eval_size", reads) == ["prepare_data"]
    assert "evaluate" in docs_config.rules_reading("evaluation.max_new_tokens", reads)
    assert "evaluate" not in docs_config.rules_reading("evaluation.alpha", reads)  # dropped from its section
    assert docs_config.rules_reading("rl.ppo.lam", reads) == ["rl"]
    assert "sft" in docs_config.rules_reading("compute.processes", reads)
    assert docs_config.rules_reading("compute.threads", reads) == []  # threads, not params


def test_readme_config_example_is_valid():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```yaml\n# my.yaml\n(.*?)```", text, re.S)
    assert blocks, "README.md has no my.yaml example"
    cfg = config.merge(yaml.safe_load((ROOT / "config.yaml").read_text()), yaml.safe_load(blocks[0]))
    config.validate(cfg, check_paths=False)


@pytest.mark.parametrize("argv", [[], ["solve"], ["verify"]], ids=["rlheals", "solve", "verify"])
def test_every_help_names_its_docs_page(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args([*argv, "--help"])
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    page = cli.DOCS[argv[0] if argv else None]
    assert page in out
    file_part, _, anchor = page.partition("#")
    assert (ROOT / file_part).exists() and anchor in anchors(ROOT / file_part)


def test_every_subcommand_has_a_docs_page():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    assert set(sub.choices) <= set(cli.DOCS)
