"""The one compiled part of optkit: L-BFGS-B's iteration in C (optkit/minimization/_lbfgsb_core.c).

Everything else is in pyproject.toml. The extension is optional: without a C compiler the build
goes on and ``optkit.minimize(method="L-BFGS-B")`` runs its NumPy engine (same iterates, slower
on small problems); ``optkit.minimization.lbfgsb.HAVE_CORE`` tells which one a process has.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "optkit.minimization._lbfgsb_core",
            ["src/optkit/minimization/_lbfgsb_core.c"],
            # no contraction of a*b + c into FMA (aarch64's default): the NumPy engine's rounding
            extra_compile_args=["-ffp-contract=off"],
            optional=True,
        )
    ]
)
