import inspect
import re
import textwrap
from pathlib import Path

import pytest
import torch

import sbikit
import sbikit.data
import sbikit.diagnostics
import sbikit.distributions
import sbikit.flows
import sbikit.inference
import sbikit.lazy
import sbikit.nn
import sbikit.numerics
import sbikit.transforms
import sbikit.utils
import simulators

LIBRARY = [
    sbikit.data,
    sbikit.distributions,
    sbikit.transforms,
    sbikit.lazy,
    sbikit.nn,
    sbikit.flows,
    sbikit.numerics,
    sbikit.utils,
    sbikit.inference,
    sbikit.diagnostics,
]
PUBLIC = [
    (module.__name__, name, getattr(module, name))
    for module in LIBRARY
    for name in module.__all__
    if not getattr(module, name).__module__.startswith("torch.")  # torch's own, re-exported
]


@pytest.mark.parametrize(("module", "name", "obj"), PUBLIC, ids=[f"{m}.{n}" for m, n, _ in PUBLIC])
def test_public_object_has_docstring_with_example(module, name, obj):
    doc = inspect.getdoc(obj)
    assert doc, f"{module}.{name} has no docstring"
    assert ">>>" in doc, f"{module}.{name} has no runnable example"


ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
MARKDOWN = [ROOT / "README.md", *PAGES]
REFERENCED = [sbikit, *LIBRARY, simulators]  # the modules whose public objects api.md lists


def api_sections() -> dict[str, str]:
    r"""The sections of docs/api.md, by module name (from the headings ## `module`)."""

    parts = re.split(r"^## `([\w.]+)`$", (DOCS / "api.md").read_text(), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


@pytest.mark.parametrize("module", REFERENCED, ids=lambda m: m.__name__)
def test_api_reference_lists_every_public_object(module):
    section = api_sections().get(module.__name__)
    assert section is not None, f"docs/api.md has no section ## `{module.__name__}`"
    listed = re.findall(rf"^- \*\*`{re.escape(module.__name__)}\.(\w+)`\*\*", section, re.M)
    missing = sorted(set(module.__all__) - set(listed))
    extra = sorted(set(listed) - set(module.__all__))
    assert not missing, f"docs/api.md lacks {module.__name__}.{missing}: add them"
    assert not extra, f"docs/api.md lists {module.__name__}.{extra}, which are not public"


def code_blocks(path: Path, language: str) -> list[tuple[int, str]]:
    r"""The fenced code blocks of a language in a Markdown file, with their first line."""

    blocks, lines = [], path.read_text().splitlines()
    fence = None
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if fence is None and stripped.startswith("```"):
            fence, start, indent, body = (
                stripped[3:].strip(),
                number,
                len(line) - len(line.lstrip()),
                [],
            )
        elif fence is not None and stripped.startswith("```"):
            if fence == language:
                blocks.append((start, textwrap.dedent("\n".join(body))))
            fence = None
        elif fence is not None:
            body.append(line[indent:] if line[:indent].isspace() else line)
    return blocks


PYTHON_BLOCKS = [
    (path, line, code) for path in MARKDOWN for line, code in code_blocks(path, "python")
]


@pytest.mark.parametrize(
    ("path", "line", "code"),
    PYTHON_BLOCKS,
    ids=[f"{path.name}:{line}" for path, line, _ in PYTHON_BLOCKS],
)
def test_python_code_blocks_are_valid_python(path, line, code):
    compile(code, f"{path.name}:{line}", "exec")


def slug(heading: str) -> str:
    r"""The anchor of a Markdown heading, as GitHub and MkDocs make it."""

    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.M | re.S)
    return {slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


LINKS = sorted(
    {
        (path, target)
        for path in MARKDOWN
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text())
        if not re.match(r"[a-z]+://|mailto:", target)
    }
)


@pytest.mark.parametrize(
    ("path", "target"), LINKS, ids=[f"{path.name}->{target}" for path, target in LINKS]
)
def test_relative_links_resolve(path, target):
    file, _, anchor = target.partition("#")
    resolved = (path.parent / file).resolve() if file else path
    assert resolved.exists(), f"{path.name} links to {target}, which does not exist"
    if anchor and resolved.suffix == ".md":
        assert anchor in anchors(resolved), f"{path.name} links to {target}: no such heading"


def test_every_page_is_in_the_readme_and_the_mkdocs_nav():
    nav = re.findall(r"^\s+- [^:]+: (\S+\.md)$", (ROOT / "mkdocs.yml").read_text(), re.M)
    readme = (ROOT / "README.md").read_text()
    for page in PAGES:
        assert page.name in nav, f"mkdocs.yml's nav lacks docs/{page.name}"
        assert f"(docs/{page.name})" in readme, f"README.md's Documentation lacks {page.name}"
    assert all((DOCS / name).exists() for name in nav)


def test_readme_states_the_commands_that_ci_runs():
    run = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    commands = [line for line in run.splitlines() if line.startswith("pip install")]
    assert commands, ".ci/run no longer installs with pip: update this test"
    for command in commands:
        assert f"```bash\n{command}\n```" in readme, f"README.md lacks `{command}`"


def test_the_simulator_of_the_own_simulator_guide_follows_the_contract():
    (line, code), *_ = code_blocks(DOCS / "own-simulator.md", "python")
    assert code.startswith("# oscillator.py")
    namespace = {}
    exec(compile(code, f"own-simulator.md:{line}", "exec"), namespace)
    prior, simulate = namespace["prior"], namespace["simulate"]
    theta = prior.sample((16,))
    assert theta.shape == (16, 3) and prior.log_prob(theta).shape == (16,)
    x = simulate(theta, torch.Generator().manual_seed(0))
    assert x.shape == (16, 50) and x.dtype == torch.float32
    assert simulate(theta[0]).shape == (50,)
