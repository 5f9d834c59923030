"""Package discovery for the one import package, ``protoface``.

The repository keeps the architecture's folders at the top (``api/``, ``domain/``,
``streams/``, ``projections/``, ``worker/``) while the installed distribution puts them
under one import package, ``protoface.api``, ``protoface.domain``, … so that no generic
top-level name lands in site-packages. Every subpackage is found, never listed by hand.
"""

from setuptools import find_packages, setup

LAYERS = ("api", "domain", "streams", "projections", "worker")


def _packages() -> list[str]:
    found = find_packages(include=[f"{layer}*" for layer in LAYERS])
    return ["protoface", *(f"protoface.{name}" for name in found)]


setup(
    packages=_packages(),
    package_dir={"protoface": "protoface", **{f"protoface.{layer}": layer for layer in LAYERS}},
)
