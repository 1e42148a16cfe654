"""Packaging glue that pyproject.toml cannot express: the top-level `prompts/` and `templates/` folders stay
where the design puts them, and ship inside the wheel as the data packages `agentlab._prompts` and
`agentlab._templates` (read at run time with importlib.resources, see agentlab/paths.py)."""

from setuptools import find_namespace_packages, setup

DATA_PACKAGES = {"agentlab._prompts": "prompts", "agentlab._templates": "templates"}

CODE = find_namespace_packages(include=["agentlab", "agentlab.*"], exclude=["*.__pycache__"])

setup(
    packages=CODE + list(DATA_PACKAGES),
    package_dir=DATA_PACKAGES,  # which files each carries: [tool.setuptools.package-data] in pyproject.toml
)
