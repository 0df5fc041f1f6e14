"""The package as a newcomer meets it: the README's first snippet runs as pasted, public modules show
their API and no stray imports, every Keras name rustkeras lacks raises NotImplementedError naming
it (and the README lists exactly those), and the wheel carries the README and the licenses."""

import importlib
import importlib.metadata
import os
import re
import subprocess
import sys
import types

import pytest

import rustkeras
from rustkeras import _api

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, "README.md")).read()


def test_the_readmes_first_python_snippet_runs_as_pasted(tmp_path):
    snippet = re.search(r"```python\n(.*?)```", README, flags=re.S).group(1)
    r = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, RUSTKERAS_HOME=str(tmp_path)))
    assert r.returncode == 0, f"the README's first snippet failed:\n{snippet}\n{r.stderr[-3000:]}"
    assert "Epoch 10/10" in r.stdout


@pytest.mark.parametrize("module", _api.PUBLIC_MODULES)
def test_public_modules_show_no_stray_imports(module):
    mod = importlib.import_module(module)
    for name in dir(mod):
        if name.startswith("_"):
            continue
        value = getattr(mod, name)
        if isinstance(value, types.ModuleType):
            assert value.__name__.startswith(module + "."), f"{module}.{name} is the imported module {value.__name__}"
        elif isinstance(value, (type, types.FunctionType)) or type(value).__module__ == "typing":
            assert getattr(value, "__module__", "rustkeras").startswith("rustkeras"), \
                f"{module}.{name} is {value!r}, imported from {value.__module__}"


def test_the_imports_named_in_the_issue_are_gone_and_the_code_still_uses_them():
    import rustkeras.callbacks
    import rustkeras.models

    assert not hasattr(rustkeras.models, "json") and not hasattr(rustkeras.callbacks, "np")
    assert not hasattr(rustkeras.config, "os") and not hasattr(rustkeras.layers.core, "Dict")
    with pytest.raises(ImportError):
        exec("from rustkeras.callbacks import np", {})
    assert "np" in vars(rustkeras.callbacks)  # the module's own code still sees it
    assert "json" not in dir(rustkeras.models) and "Model" in dir(rustkeras.models)


@pytest.mark.parametrize("module", _api.PUBLIC_MODULES)
def test_every_keras_name_is_there_or_raises_not_implemented_naming_it(module):
    mod = importlib.import_module(module)
    for name in _api.keras_names(module):
        try:
            getattr(mod, name)
        except NotImplementedError as e:
            assert f"{module}.{name}" in str(e) and "not supported by rustkeras" in str(e)
        except ImportError as e:  # a name that needs an optional dependency, which is missing here
            assert "scikit-learn" in str(e)
    with pytest.raises(AttributeError):
        getattr(mod, "no_such_name_in_keras")


def test_not_implemented_reaches_from_imports_and_leaves_submodule_imports_alone():
    with pytest.raises(NotImplementedError, match="rustkeras.layers.MultiHeadAttention"):
        exec("from rustkeras.layers import MultiHeadAttention", {})
    with pytest.raises(NotImplementedError, match="rustkeras.applications"):
        rustkeras.applications  # noqa: B018
    env = {}
    exec("from rustkeras.preprocessing import sequence; from rustkeras.utils import np_utils", env)
    assert env["sequence"].pad_sequences is rustkeras.utils.pad_sequences


def test_the_readme_lists_exactly_what_is_not_supported():
    listed = README.split("<!-- unsupported:begin")[1].split("\n", 1)[1].split("<!-- unsupported:end -->")[0]
    assert listed == _api.readme_section(), (
        "README.md's list of Keras names rustkeras lacks is out of date: replace the lines between the "
        "`unsupported:begin` and `unsupported:end` markers with `rustkeras._api.readme_section()`"
    )


def test_pyproject_names_the_readme_and_the_licenses_cargo_names():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    with open(os.path.join(ROOT, "Cargo.toml"), "rb") as f:
        cargo = tomllib.load(f)["package"]
    assert project["readme"] == "README.md"
    assert project["license"] == cargo["license"] == "MIT OR Apache-2.0"
    assert sorted(project["license-files"]) == ["LICENSE-APACHE", "LICENSE-MIT"]
    mit = open(os.path.join(ROOT, "LICENSE-MIT")).read()
    apache = open(os.path.join(ROOT, "LICENSE-APACHE")).read()
    assert "Permission is hereby granted, free of charge" in mit
    assert "Apache License" in apache and "Version 2.0, January 2004" in apache
    assert "END OF TERMS AND CONDITIONS" in apache


def test_the_installed_distribution_carries_the_readme_and_the_licenses():
    try:
        meta = importlib.metadata.metadata("rustkeras")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("rustkeras is not installed as a distribution here (CI installs it with `pip install .`)")
    assert meta["License-Expression"] == "MIT OR Apache-2.0"
    assert sorted(meta.get_all("License-File")) == ["LICENSE-APACHE", "LICENSE-MIT"]
    assert meta["Description-Content-Type"].startswith("text/markdown")
    # (importlib_metadata, the backport, which Dask puts on sys.meta_path, serves the body as `Description`)
    assert (meta.get_payload() or meta.get("Description", "")).strip().startswith("# rustkeras")
    files = [str(f) for f in importlib.metadata.files("rustkeras")]
    assert any(f.endswith("licenses/LICENSE-MIT") for f in files)
    assert any(f.endswith("licenses/LICENSE-APACHE") for f in files)
