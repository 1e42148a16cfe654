import subprocess
import sys

from agentlab.modules import apidoc


def test_importing_the_package_and_apidoc_does_not_import_torch():
    code = ("import sys, agentlab.modules, agentlab.modules.apidoc as a; a.render_api_doc(); "
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_every_public_function_documents_what_it_returns_with_an_example():
    funcs = apidoc.public_functions()
    assert len(funcs) > 40
    missing = [f"{f.module}.{f.name}" for f in funcs if "Returns:" not in f.doc or "Example:" not in f.doc]
    assert missing == []


def test_the_api_doc_lists_every_public_function_with_a_code_example():
    doc = apidoc.render_api_doc()
    for f in apidoc.public_functions():
        assert f"`{f.module}.{f.name}(" in doc
    assert doc.count("```python") >= len(apidoc.public_functions())
    assert "KVStats` (dataclass)" in doc and "compression_ratio" in doc


def test_lazy_submodule_access():
    import agentlab.modules as m

    assert m.apidoc is apidoc


def test_the_doc_can_be_limited_to_some_modules():
    doc = apidoc.render_api_doc(("kv", "metrics"))
    assert "kv.snapkv(" in doc and "metrics.perplexity(" in doc and "prune.wanda_prune(" not in doc


def test_every_module_is_documented_unless_it_opts_out_and_every_kv_method_is_listed():
    import agentlab.modules as m
    from agentlab.modules.methods import KV_METHODS

    assert set(apidoc.DOCUMENTED_MODULES) == set(m.SUBMODULES) - {"apidoc", "benchmark", "methods", "kv_methods", "harness",
                                                                "prune_methods", "attention_methods", "draft_methods"}
    doc = apidoc.render_api_doc(("kv",))
    for name in KV_METHODS.names():
        assert f"`kv.{name}(model, input_ids" in doc
    assert "`kv.snapkv(model, input_ids, budget=0.25, window: int=32, kernel: int=7)`" in doc
    assert "`kv.quantize(model, input_ids, bits: int=8, group_size: int=32)`" in doc
