"""dlt_lib.backend: mode selection, describe(), and that mode C really calls OpenBLAS."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from support import require

from dlt_lib import backend  # first: it configures PyTensor (float32, OpenBLAS) before PyTensor loads

# isort: split
import pytensor
import pytensor.tensor as pt
from pytensor.compile.mode import Mode
from pytensor.link.numba.linker import NumbaLinker
from pytensor.link.vm import VMLinker


@pytest.fixture
def restore_mode():
    """Leave the process-wide mode as we found it."""
    saved = backend._current_mode
    yield
    backend._current_mode = saved


# --- mode selection ----------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [("C", "C"), ("c", "C"), ("cvm", "C"), (" CVM ", "C"), ("numba", "NUMBA"), ("Numba", "NUMBA")],
)
def test_set_mode_normalises_names(restore_mode, name, expected):
    assert backend.set_mode(name) == expected
    assert backend.mode_name() == expected


def test_unknown_mode_is_a_value_error_naming_the_valid_modes(restore_mode):
    backend.set_mode("C")
    with pytest.raises(ValueError) as excinfo:
        backend.set_mode("FAST_RUN")
    message = str(excinfo.value)
    assert "FAST_RUN" in message
    for valid in ("C", "NUMBA", "JAX"):
        assert valid in message
    # a failed set_mode changes nothing
    assert backend.mode_name() == "C"
    with pytest.raises(ValueError, match="NUMBA"):
        backend.get_mode("gpu")
    with pytest.raises(ValueError, match="JAX"):
        backend.describe("cuda")


def test_mode_comes_from_DLT_MODE_when_not_set(restore_mode, monkeypatch):
    monkeypatch.setattr(backend, "_current_mode", None)
    monkeypatch.setenv("DLT_MODE", "numba")
    assert backend.mode_name() == "NUMBA"
    monkeypatch.setattr(backend, "_current_mode", None)
    monkeypatch.delenv("DLT_MODE")
    assert backend.mode_name() == backend.DEFAULT_MODE == "C"


def test_bad_DLT_MODE_fails_loudly(restore_mode, monkeypatch):
    monkeypatch.setattr(backend, "_current_mode", None)
    monkeypatch.setenv("DLT_MODE", "theano")
    with pytest.raises(ValueError, match="theano"):
        backend.mode_name()


def test_get_mode_returns_the_matching_pytensor_mode(restore_mode):
    c_mode = backend.get_mode("C")
    assert isinstance(c_mode, Mode)
    # "C" is PyTensor's CVM: the VM linker with C thunks and the C loop.
    assert isinstance(c_mode.linker, VMLinker)
    assert c_mode.linker.c_thunks and c_mode.linker.use_cloop
    assert isinstance(backend.get_mode("NUMBA").linker, NumbaLinker)
    backend.set_mode("numba")
    assert isinstance(backend.get_mode().linker, NumbaLinker)


def test_mode_C_keeps_intermediates_and_skips_the_log_sum_exp_rewrite():
    c_mode = backend.get_mode("C")
    assert c_mode.linker.allow_gc is False
    x = pt.matrix("x")
    f = pytensor.function([x], pt.log(pt.sum(pt.exp(x), axis=1)), mode=c_mode)
    maxima = [n for n in f.maker.fgraph.apply_nodes if "Max" in str(n.op)]
    assert maxima == []  # computed as written: dlt_lib's log-softmax subtracts the max itself
    g = pytensor.function([x], pt.log(pt.sum(pt.exp(x), axis=1)), mode=backend.get_mode("NUMBA"))
    assert any("Max" in str(n.op) for n in g.maker.fgraph.apply_nodes)  # PyTensor's own modes keep it


def test_mode_C_results_of_two_calls_do_not_share_memory():
    # allow_gc=False keeps the *intermediate* arrays between calls; what a call
    # returns must still be the caller's own array, not overwritten by the next call.
    x = pt.matrix("x")
    f = pytensor.function([x], [pt.exp(x) * 2, (x @ x.T).sum(axis=0)], mode=backend.get_mode("C"))
    first = f(np.ones((3, 3), "float32"))
    second = f(np.zeros((3, 3), "float32"))
    assert not any(np.shares_memory(a, b) for a, b in zip(first, second))
    np.testing.assert_allclose(first[0], 2 * np.e, rtol=1e-6)
    np.testing.assert_allclose(first[1], 9.0)


def _scalar_ops(fn):
    from pytensor.scalar.basic import Composite

    names = set()
    for node in fn.maker.fgraph.apply_nodes:
        scalar_op = getattr(node.op, "scalar_op", None)
        if isinstance(scalar_op, Composite):
            names |= {type(n.op).__name__ for n in scalar_op.fgraph.apply_nodes}
        elif scalar_op is not None:
            names.add(type(scalar_op).__name__)
    return names


def test_mode_C_computes_float32_tanh_through_the_sigmoid():
    x = np.linspace(-12, 12, 200_001).astype("float32")
    xv = pt.vector("x")
    f = pytensor.function([xv], pt.tanh(xv), mode=backend.get_mode("C"))
    assert "Tanh" not in _scalar_ops(f) and "Sigmoid" in _scalar_ops(f)
    np.testing.assert_allclose(f(x), np.tanh(x), rtol=0, atol=2.5e-7)
    assert f(np.array([np.inf, -np.inf, np.nan], "float32")).tolist()[:2] == [1.0, -1.0]
    assert np.isnan(f(np.array([np.nan], "float32"))[0])
    # float64 keeps the C library's tanh: the rewrite is a float32 speed trick only
    d = pt.dvector("d")
    g = pytensor.function([d], pt.tanh(d), mode=backend.get_mode("C"))
    assert "Tanh" in _scalar_ops(g)


@pytest.mark.jax
def test_jax_mode(restore_mode):
    assert backend.set_mode("jax") == "JAX"
    assert type(backend.get_mode().linker).__name__ == "JAXLinker"
    info = backend.describe()
    assert info.mode == "JAX"
    assert ":" in info.device  # e.g. "cpu:0 (cpu)"


def test_floatX_is_float32():
    assert pytensor.config.floatX == "float32"
    assert pt.matrix("x").dtype == "float32"


def test_describe(restore_mode):
    backend.set_mode("C")
    info = backend.describe()
    assert (info.mode, info.device, info.floatX) == ("C", "cpu", "float32")
    text = str(info)
    assert pytensor.__version__ in text and "mode C" in text and "float32" in text
    assert len(text) <= 79, "one line that fits the page"
    assert backend.describe("numba").mode == "NUMBA"
    assert backend.mode_name() == "C"  # describe(name) does not switch modes
    if backend.find_blas_ldflags():
        assert "openblas" in info.blas and text.endswith("BLAS: openblas")
    else:
        assert "fallback" in info.blas


# --- mode C really uses OpenBLAS ---------------------------------------------


@pytest.fixture
def openblas():
    flags = backend.find_blas_ldflags()
    require(
        bool(flags),
        "no libopenblas.so found: install Debian's libopenblas-dev (make system-deps); "
        "without it mode C uses PyTensor's slow NumPy C-API fallback",
    )
    return flags


def _elf_dynamic_info(path: Path) -> tuple[list[str], set[str]]:
    """(DT_NEEDED libraries, undefined dynamic symbols) of a 64-bit little-endian ELF file."""
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF", f"{path} is not an ELF file"
    assert data[4] == 2 and data[5] == 1, "only ELF64 little-endian is handled"
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]

    def c_string(table_index: int, offset: int) -> str:
        start = sections[table_index][4] + offset
        return data[start : data.index(b"\0", start)].decode()

    needed, undefined = [], set()
    for _name, sh_type, _flags, _addr, offset, size, link, _info, _align, entsize in sections:
        if sh_type == 6:  # SHT_DYNAMIC
            for pos in range(offset, offset + size, 16):
                tag, value = struct.unpack_from("<qQ", data, pos)
                if tag == 0:
                    break
                if tag == 1:  # DT_NEEDED
                    needed.append(c_string(link, value))
        elif sh_type == 11:  # SHT_DYNSYM
            for pos in range(offset + entsize, offset + size, entsize):
                st_name, _st_info, _st_other, st_shndx = struct.unpack_from("<IBBH", data, pos)
                if st_shndx == 0 and st_name:  # SHN_UNDEF: imported from a library
                    undefined.add(c_string(link, st_name))
    return needed, undefined


def _loaded_libraries() -> set[str]:
    return {line.split()[-1] for line in Path("/proc/self/maps").read_text().splitlines() if ".so" in line}


def _compiled_module_files(fn) -> list[Path]:
    """The .so files PyTensor compiled for the BLAS nodes of a CVM-mode function."""
    files = []
    for node, thunk in zip(fn.vm.nodes, fn.vm.thunks, strict=True):
        if type(node.op).__module__.startswith("pytensor.tensor.blas"):
            module = thunk.thunk.module  # the _CThunk keeps the module it was built from
            files.append(Path(module.__file__))
    return files


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
def test_mode_C_dot_is_compiled_against_openblas(openblas):
    # The flags dlt_lib set before PyTensor was imported are the ones in force.
    assert "-lopenblas" in pytensor.config.blas__ldflags

    rng = np.random.default_rng(0)
    x = pt.matrix("x", dtype="float32")
    W = pytensor.shared(rng.normal(size=(64, 32)).astype("float32"), name="W")
    f = pytensor.function([x], pt.dot(x, W), mode=backend.get_mode("C"))

    # 1. The product became one of PyTensor's BLAS ops (Dot22 / Gemm), not a NumPy dot.
    blas_ops = [
        type(n.op).__name__ for n in f.vm.nodes if type(n.op).__module__.startswith("pytensor.tensor.blas")
    ]
    assert blas_ops, f"no BLAS op in the compiled graph: {[n.op for n in f.vm.nodes]}"

    # 2. Its compiled C module links libopenblas and imports single-precision GEMM from it
    #    (the NumPy C-API fallback would import no sgemm_ and link no BLAS).
    so_files = _compiled_module_files(f)
    assert so_files
    for so_file in so_files:
        assert so_file.is_file() and so_file.is_relative_to(Path(pytensor.config.compiledir).resolve())
        needed, undefined = _elf_dynamic_info(so_file)
        assert any(lib.startswith("libopenblas") for lib in needed), f"{so_file.name} links {needed}"
        assert "sgemm_" in undefined, f"{so_file.name} does not call sgemm_"

    # 3. At run time the library really is loaded, from where find_blas_ldflags() found it,
    #    and the product is right.
    value = rng.normal(size=(16, 64)).astype("float32")
    np.testing.assert_allclose(f(value), value @ W.get_value(), rtol=1e-5, atol=1e-5)
    blas_dir = openblas.split()[0].removeprefix("-L")
    loaded = [lib for lib in _loaded_libraries() if "libopenblas" in Path(lib).name]
    assert loaded, "libopenblas is not mapped into this process"
    system_openblas = Path(blas_dir, "libopenblas.so").resolve()
    assert any(Path(lib).resolve() == system_openblas for lib in loaded), (loaded, system_openblas)


def test_describe_reports_the_blas_in_force(openblas):
    assert backend.describe("C").blas == pytensor.config.blas__ldflags
    assert openblas.split()[0] in backend.describe("C").blas


def _elf_section_names(path: Path) -> set[str]:
    """The section names of a 64-bit little-endian ELF file (``.text``, ``.debug_info``, ...)."""
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, f"{path} is not an ELF64 LE file"
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names_offset = sections[shstrndx][4]
    return {
        data[names_offset + name : data.index(b"\0", names_offset + name)].decode() for name, *_ in sections
    }


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux and ELF modules")
def test_mode_C_modules_are_compiled_without_debug_information():
    # dlt_lib adds -g0 to PyTensor's g++ flags (after its -g): a cold build compiles
    # about 160 modules, and nobody steps through them in a debugger.
    assert backend.NO_DEBUG_INFO in pytensor.config.gcc__cxxflags.split()
    x = pt.vector("x", dtype="float32")
    # A constant no other test uses, so that this module is compiled now, with today's flags.
    f = pytensor.function([x], pt.exp(x) * np.float32(1.2345678) + x, mode=backend.get_mode("C"))
    modules = [
        Path(t.thunk.module.__file__) for t in f.vm.thunks if hasattr(getattr(t, "thunk", None), "module")
    ]
    assert modules, "no compiled C module in the function"
    for module in modules:
        sections = _elf_section_names(module)
        assert ".text" in sections, sections  # the parser read the section names
        assert ".debug_info" not in sections, f"{module} was compiled with debug information"
