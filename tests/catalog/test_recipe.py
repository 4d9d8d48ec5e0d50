"""Loading recipes: files and directories, variables, YAML with line numbers, shape errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from merkl.catalog.recipe import iter_recipe_paths, load_recipe
from merkl.errors import RecipeError

VALID = """\
name: staging-models
version: v1beta1
source:
  name: merlin
  scope: staging
  config:
    url: https://merlin.example.com/api/merlin
processors:
  - name: labels
    config:
      labels: {team: ml}
sinks:
  - name: console
  - name: file
    config:
      path: ./out.ndjson
      format: ndjson
"""


def write(folder: Path, text: str, name: str = "recipe.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def test_a_valid_recipe(merkl_globals):
    recipe = load_recipe(write(merkl_globals, VALID), environ={})
    assert recipe.name == "staging-models"
    assert (recipe.source.name, recipe.source.scope) == ("merlin", "staging")
    assert recipe.source.config == {"url": "https://merlin.example.com/api/merlin"}
    assert [p.name for p in recipe.processors] == ["labels"]
    assert [s.name for s in recipe.sinks] == ["console", "file"]
    assert recipe.sinks[0].config == {}
    assert recipe.where(("sinks", 1, "config", "format")) == f"{recipe.path}:17"
    assert recipe.where(("sinks", 1, "config", "nope")) == f"{recipe.path}:15"


def test_name_defaults_to_the_file_name_and_legacy_type_names_the_source(merkl_globals):
    text = VALID.replace("name: staging-models\n", "").replace("  name: merlin", "  type: merlin")
    recipe = load_recipe(write(merkl_globals, text, "nightly.yml"), environ={})
    assert recipe.name == "nightly"
    assert recipe.source.name == "merlin"


def test_env_variables_expand_in_string_values_only(merkl_globals):
    text = VALID.replace(
        "https://merlin.example.com/api/merlin", "${MERLIN_HOST}/api/${MISSING:-merlin}"
    ).replace("team: ml", "team: '$${LITERAL}', owner: '${USER_NAME}'")
    recipe = load_recipe(
        write(merkl_globals, text), environ={"MERLIN_HOST": "http://h:1", "USER_NAME": "ann"}
    )
    assert recipe.source.config["url"] == "http://h:1/api/merlin"
    assert recipe.processors[0].config["labels"] == {"team": "${LITERAL}", "owner": "ann"}


def test_every_missing_env_variable_is_listed_with_its_line(merkl_globals):
    text = VALID.replace("scope: staging", "scope: ${SCOPE}").replace(
        "./out.ndjson", "${OUT_DIR}/out.ndjson"
    )
    with pytest.raises(RecipeError) as caught:
        load_recipe(write(merkl_globals, text), environ={})
    assert str(caught.value) == (
        f"{merkl_globals / 'recipe.yaml'}: environment variables not set: SCOPE (line 5), "
        "OUT_DIR (line 16); export them, or write ${NAME:-default} to give a default"
    )


def test_meteor_template_variables_from_environment_and_var_file(merkl_globals):
    text = VALID.replace("scope: staging", "scope: {{ .scope }}").replace(
        "team: ml", 'team: {{.source_team}}, tier: "  {{- .tier -}}  "'
    )
    var_file = write(merkl_globals, "source:\n  team: search\ntier: gold\n", "vars.yaml")
    recipe = load_recipe(
        write(merkl_globals, text),
        environ={"METEOR_SCOPE": "prod", "METEOR_TIER": "x"},
        var_file=var_file,
    )
    assert recipe.source.scope == "prod"
    assert recipe.processors[0].config["labels"] == {"team": "search", "tier": "gold"}


def test_missing_template_variables_are_listed(merkl_globals):
    text = VALID.replace("scope: staging", "scope: {{ .scope }}").replace("ml", "{{ .team }}")
    with pytest.raises(
        RecipeError,
        match=r"no value for template variables scope \(line 5\), "
        r"team \(line 11\); set METEOR_<NAME>",
    ):
        load_recipe(write(merkl_globals, text), environ={})


def test_template_actions_other_than_variables_are_refused(merkl_globals):
    text = VALID.replace("scope: staging", "scope: {{ if .x }}a{{ end }}")
    with pytest.raises(RecipeError, match=r"recipe.yaml:5: unsupported template action"):
        load_recipe(write(merkl_globals, text), environ={})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("version: v1beta1", "version: v1"),
            ":2: recipe version is invalid or not found: got 'v1', expected 'v1beta1'",
        ),
        (("version: v1beta1\n", ""), ": recipe version is invalid or not found: got None"),
        (("name: staging-models", "nam: x"), ":1: unknown recipe key 'nam'"),
        (("  scope: staging", "  scope: staging\n  scopes: x"), ":6: unknown source key 'scopes'"),
        (("  - name: console", "  - nme: console"), ":13: unknown sink key 'nme'"),
        (("  - name: console", "  - config: {}"), ":13: the sink entry needs a `name:`"),
        (("      labels: {team: ml}", "      - labels"), ":10: the processor 'labels' `config:`"),
        (
            (VALID[VALID.index("sinks:") :], "sinks: []\n"),
            ":12: the recipe needs at least one sink",
        ),
        (("  scope: staging", "  scope: [a]"), ":5: the source scope must be a string"),
        (("  config:\n    url", "  config:\n    url: 1\n    url"), ":8: key 'url' appears twice"),
        (("      format: ndjson", "      format: [ndjson"), ":18: invalid YAML: expected ','"),
    ],
)
def test_shape_errors_name_file_and_line(merkl_globals, change, message):
    path = write(merkl_globals, VALID.replace(*change))
    with pytest.raises(RecipeError) as caught:
        load_recipe(path, environ={})
    assert message in str(caught.value)
    assert str(caught.value).startswith(str(path))


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "the recipe is empty"), ("- a\n- b\n", "a recipe is a YAML mapping")],
)
def test_empty_or_non_mapping_recipes(merkl_globals, text, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe(write(merkl_globals, text), environ={})


def test_yaml_errors_do_not_echo_the_offending_line(merkl_globals):
    path = write(merkl_globals, VALID.replace("format: ndjson", "format: ndjson: sekret-value"))
    with pytest.raises(RecipeError) as caught:
        load_recipe(path, environ={})
    assert "sekret-value" not in str(caught.value)


def test_recipe_paths_from_files_and_directories(merkl_globals):
    folder = merkl_globals / "recipes"
    folder.mkdir()
    for name in ("b.yaml", "a.yml", "notes.txt"):
        (folder / name).write_text("x")
    assert [p.name for p in iter_recipe_paths(folder)] == ["a.yml", "b.yaml"]
    assert iter_recipe_paths(folder / "b.yaml") == [folder / "b.yaml"]
    with pytest.raises(RecipeError, match="no recipe file or directory"):
        iter_recipe_paths(folder / "nope.yaml")
    (merkl_globals / "empty").mkdir()
    with pytest.raises(RecipeError, match=r"no recipe files \(\*.yaml, \*.yml\) in directory"):
        iter_recipe_paths(merkl_globals / "empty")


def test_unreadable_recipe(merkl_globals):
    path = merkl_globals / "bin.yaml"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(RecipeError, match=r"cannot read recipe .*not UTF-8"):
        load_recipe(path, environ={})
