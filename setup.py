"""The one compiled part of optkit: L-BFGS-B's iteration in C (optkit/minimization/_lbfgsb_core.c).

Everything else is in pyproject.toml. The extension is optional: without a C compiler the build
goes on and ``optkit.minimize(method="L-BFGS-B")`` runs its NumPy engine (same algorithm,
slower on small problems); ``optkit.minimization.lbfgsb.HAVE_CORE`` tells which one a process
has. See docs/design.md, "One compiled part".
"""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class BuildExt(build_ext):
    """No contraction of a*b + c into one FMA (gcc's and clang's default on some targets, e.g.
    aarch64): the C engine's rounding stays plain IEEE arithmetic, as the NumPy engine's."""

    def build_extensions(self):
        if self.compiler.compiler_type != "msvc":
            for ext in self.extensions:
                ext.extra_compile_args.append("-ffp-contract=off")
        super().build_extensions()


setup(
    ext_modules=[
        Extension(
            "optkit.minimization._lbfgsb_core",
            ["src/optkit/minimization/_lbfgsb_core.c"],
            optional=True,
        )
    ],
    cmdclass={"build_ext": BuildExt},
)
