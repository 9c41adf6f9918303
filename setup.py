"""The compiled parts of ticktape (project metadata is in pyproject.toml).

Extensions build from source with gcc and the Python headers. Each is ``optional``: when it does not
compile, the install goes on and the pure-Python reference runs instead (``make install`` says so).

- ``collectors._booknative`` (collectors/_booknative.c): the book engine's price-level store and level
  parsing (``collectors.book``), the Binance frame scanner, and ``ColumnRows`` (collectors/_columnrows.c),
  a dataset's rows held as columns behind the list-of-tuples API (``collectors.base.new_record_buffer``);
- ``streaming._avronative`` (streaming/_avronative.c): the Avro codec's batch encoder and column
  decoder (``streaming.codec``);
- ``collectors._capturenative`` (collectors/_capturenative.c): capture blocks split into items
  (``collectors.capture``).

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
            sources=["collectors/_booknative.c", "collectors/_columnrows.c"],
            depends=["collectors/_columnrows.h", "collectors/_frameblock.h"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wno-missing-braces"],
            optional=True,
        ),
        Extension(
            "streaming._avronative",
            sources=["streaming/_avronative.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra"],
            optional=True,
        ),
        Extension(
            "collectors._capturenative",
            sources=["collectors/_capturenative.c"],
            depends=["collectors/_frameblock.h"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra"],
            optional=True,
        ),
    ],
)
