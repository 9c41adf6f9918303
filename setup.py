"""Build of the compiled parts (everything else is in pyproject.toml).

``collectors._booknative`` (collectors/_booknative.c): the book engine's price-level store and level
parsing, plain C against the Python headers. It is optional: when it does not compile, the install
goes on and ``collectors.book`` uses its pure-Python reference (``make install`` says so).

Documentation followed (checked 2026-12-05): ``ext_modules`` beside pyproject.toml metadata,
https://setuptools.pypa.io/en/latest/userguide/ext_modules.html; ``Extension(optional=True)``, "a
build failure in the extension will not abort the build process",
https://docs.python.org/3/distutils/setupscript.html#other-options.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "collectors._booknative",
            sources=["collectors/_booknative.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wno-missing-braces"],
            optional=True,
        ),
    ],
)
