"""The compiled parts of ticktape (project metadata is in pyproject.toml).

Extensions build from source with gcc and the Python headers. Each is ``optional``: when it does not
compile, the install goes on and the pure-Python reference runs instead (``make install`` says so).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "streaming._avronative",
            ["streaming/_avronative.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra"],
            optional=True,
        )
    ]
)
