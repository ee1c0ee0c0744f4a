"""Build hook for the one native module: the keyed content-defined chunker (C, no dependencies).

The extension is optional: where no C compiler is present, opsbackup falls back to the pure-Python
reference chunker (same boundaries, much slower) and ``opsbackup benchmark`` says so.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "opsbackup.chunking._cdc",
            sources=["opsbackup/chunking/_cdc.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)
