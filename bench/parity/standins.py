"""Stand-ins for the official codes' run-time dependencies, so that their files run unchanged on this CPU.

Nothing here edits or copies the official code; it supplies what that code reaches for at run time:

- :func:`official_import`: imports one module of an official checkout by path (its directory first on
  ``sys.path``, its working directory and ``sys.argv`` as its scripts expect), then forgets the modules it
  loaded, so two checkouts' ``model.py`` never meet;
- stand-in modules, installed only while an official module imports: :func:`sacred_standin` (the ``Experiment``
  object SMIE's ``config.py`` builds: ``config`` runs the config function and keeps its locals, ``capture`` fills
  missing arguments from them), :func:`einops_standin` (``repeat``/``rearrange`` for pure axis insertion and
  permutation, all SMIE's ``model.py`` uses) and :func:`torchvision_standin` (an empty ``torchvision.models``:
  MSF and SynSE import it and use nothing);
- :class:`OfficialRuntime`: while official code runs, ``.cuda()`` and ``.to("cuda")`` keep tensors and modules on
  the CPU, ``torch.cuda.FloatTensor``/``LongTensor`` build CPU tensors (of the run's float dtype), in a float64
  run ``Tensor.float()`` keeps float64 (the codes cast their text rows with ``.float()``), every
  ``Tensor.normal_`` (their reparameterisation noise) is filled from a :class:`Draws` source, and every
  ``Tensor.backward`` records the loss and its caller's local variables (the schedule weights of that step);
- :func:`logistic_regression_standin`: scikit-learn >= 1.7 dropped ``LogisticRegression(multi_class=...)``,
  which MSF's ``gating_train.py`` passes; for two classes the multinomial optimum with ``C`` is the binary one
  with ``2 C`` (the multinomial fit splits ``w`` into ``+-w/2``, so its penalty ``|w|^2 / 4`` is half the
  binary one), which is what the stand-in fits;
- :func:`quiet`: the official scripts print every step; their output is swallowed.
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import io
import os
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterator

import torch

_randn = torch.randn  # the real one: smie_side.feed_noise replaces torch.randn while smie draws


# --- importing an official module -------------------------------------------------------------------------

@contextlib.contextmanager
def official_context(repo: Path, cwd: Path | None = None, argv: list[str] | None = None,
                     modules: dict[str, ModuleType] | None = None):
    """``repo`` first on ``sys.path``, ``cwd`` as working directory, ``argv``, stand-in ``modules``; everything
    restored on exit and the modules loaded from ``repo`` forgotten."""
    modules = modules or {}
    saved_path, saved_argv, saved_cwd, saved_env = list(sys.path), list(sys.argv), os.getcwd(), dict(os.environ)
    saved_mods = {name: sys.modules.get(name) for name in modules}
    before = set(sys.modules)
    sys.path.insert(0, str(repo))
    sys.argv = [str(repo / "standin.py"), *(argv or [])]
    sys.modules.update(modules)
    if cwd is not None:
        os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)  # the SynSE/MSF scripts set CUDA_VISIBLE_DEVICES
        sys.path[:] = saved_path
        sys.argv[:] = saved_argv
        for name in set(sys.modules) - before:
            mod = sys.modules.get(name)
            if name in modules or str(getattr(mod, "__file__", "") or "").startswith(str(repo)):
                del sys.modules[name]
        for name, mod in saved_mods.items():
            if mod is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = mod


def official_import(repo: Path, name: str, *, cwd: Path | None = None, argv: list[str] | None = None,
                    modules: dict[str, ModuleType] | None = None, runtime: "OfficialRuntime | None" = None
                    ) -> ModuleType:
    """Import module ``name`` (e.g. ``"train"``, ``"synse_training"``) from the official checkout ``repo`` as its
    scripts run: ``cwd`` as working directory, ``argv`` as command line, ``modules`` (stand-ins) in
    ``sys.modules``, under ``runtime`` (CPU, dtype). Its module-level code (argument parsing, data loading,
    model construction) runs once; the modules it loaded from ``repo`` are then dropped from ``sys.modules``
    (the returned module object keeps working: its functions hold their globals)."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(official_context(Path(repo), cwd, argv, modules))
        if runtime is not None:
            stack.enter_context(runtime)
        stack.enter_context(quiet())
        return importlib.import_module(name)


def run_official_script(repo: Path, script: str, *, cwd: Path, argv: list[str],
                        modules: dict[str, ModuleType] | None = None) -> dict:
    """Run ``repo/script`` as ``__main__`` (``runpy``) with ``argv`` in ``cwd``; return its globals."""
    import runpy

    with official_context(Path(repo), cwd, argv, modules), quiet():
        return runpy.run_path(str(Path(repo) / script), run_name="__main__")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Swallow stdout, stderr and warnings (the official scripts print losses every step, tqdm draws bars, and
    torch warns about their deprecated arguments and 8-worker loaders)."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# --- stand-in modules ---------------------------------------------------------------------------------------

class Experiment:
    """Stand-in for ``sacred.Experiment``: what SMIE's ``config.py``, ``model.py`` and ``procedure.py`` touch.

    ``config(fn)`` runs the config function and keeps its local variables as the configuration (``cfg``);
    ``capture(fn)`` fills each parameter the caller left out from ``cfg`` (sacred's injection);
    ``automain(fn)`` only records ``fn`` (the module is never ``__main__`` here).
    """

    def __init__(self, name: str = "", **_):
        self.name = name
        self.cfg: dict = {}
        self.main = None

    def config(self, fn: Callable) -> Callable:
        self.cfg.update(_locals_of(fn))
        return fn

    def capture(self, fn: Callable) -> Callable:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def captured(*args, **kwargs):
            bound = sig.bind_partial(*args, **kwargs).arguments
            for pname in sig.parameters:
                if pname not in bound and pname in self.cfg:
                    kwargs[pname] = self.cfg[pname]
            return fn(*args, **kwargs)

        return captured

    def automain(self, fn: Callable) -> Callable:
        self.main = fn
        return fn


def _locals_of(fn: Callable) -> dict:
    """Local variables of ``fn()`` at its return (how sacred reads a config scope)."""
    seen: dict = {}

    def profile(frame, event, arg):
        if event == "return" and frame.f_code is fn.__code__:
            seen.update(frame.f_locals)

    old = sys.getprofile()
    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(old)
    return seen


def sacred_standin() -> ModuleType:
    mod = ModuleType("sacred")
    mod.Experiment = Experiment
    mod.__file__ = __file__
    return mod


def _axes(side: str) -> list[str]:
    names = side.split()
    if any(not n.isidentifier() for n in names):
        raise NotImplementedError(f"einops stand-in handles plain axis names only, got {side!r}")
    return names


def _repeat(tensor: torch.Tensor, pattern: str, **sizes) -> torch.Tensor:
    """``einops.repeat`` for patterns whose output is the input's axes, reordered, plus new named axes."""
    left, right = (s.strip() for s in pattern.split("->"))
    src, dst = _axes(left), _axes(right)
    if len(src) != tensor.dim() or not set(src) <= set(dst):
        raise NotImplementedError(f"einops stand-in cannot repeat {tuple(tensor.shape)} with {pattern!r}")
    x = tensor.permute(*[src.index(a) for a in dst if a in src])
    shape = []
    for i, axis in enumerate(dst):
        if axis not in src:
            x = x.unsqueeze(i)
            shape.append(int(sizes[axis]))
        else:
            shape.append(x.shape[i])
    return x.expand(*shape).contiguous()


def _rearrange(tensor: torch.Tensor, pattern: str, **_) -> torch.Tensor:
    left, right = (s.strip() for s in pattern.split("->"))
    src, dst = _axes(left), _axes(right)
    if sorted(src) != sorted(dst):
        raise NotImplementedError(f"einops stand-in rearranges by permutation only, got {pattern!r}")
    return tensor.permute(*[src.index(a) for a in dst])


def einops_standin() -> ModuleType:
    mod = ModuleType("einops")
    mod.repeat, mod.rearrange = _repeat, _rearrange
    mod.__file__ = __file__
    return mod


def torchvision_standin() -> dict[str, ModuleType]:
    tv, models = ModuleType("torchvision"), ModuleType("torchvision.models")
    tv.models = models
    tv.__file__ = models.__file__ = __file__
    return {"torchvision": tv, "torchvision.models": models}


def logistic_regression_standin() -> dict[str, ModuleType]:
    """``{"sklearn.linear_model": module}`` whose ``LogisticRegression`` accepts ``multi_class`` (see the module
    docstring); empty where the installed scikit-learn still accepts it (then the code runs on the real one)."""
    from sklearn import linear_model

    if "multi_class" in inspect.signature(linear_model.LogisticRegression.__init__).parameters:
        return {}
    mod = ModuleType("sklearn.linear_model")
    mod.__dict__.update({k: v for k, v in vars(linear_model).items() if not k.startswith("__")})
    MultinomialLogisticRegression.real = linear_model.LogisticRegression
    mod.LogisticRegression = MultinomialLogisticRegression
    mod.__file__ = __file__
    return {"sklearn.linear_model": mod}


class MultinomialLogisticRegression:
    """What ``LogisticRegression(multi_class="multinomial", C=C, ...)`` fitted on two classes: scikit-learn's
    binary fit at ``2 C`` (module docstring); ``predict``/``predict_proba``/``coef_``/``intercept_`` delegate to
    it. A plain class (picklable by name), since ``gating_train.py`` pickles the model ``gating_eval.py`` loads."""

    real: type  # scikit-learn's LogisticRegression, set by logistic_regression_standin

    def __init__(self, multi_class: str = "auto", C: float = 1.0, **kwargs):
        self.multi_class, self.C, self.kwargs = multi_class, float(C), kwargs

    def fit(self, X, y, sample_weight=None):
        import numpy as np

        two = len(np.unique(y)) == 2 and self.multi_class == "multinomial"
        self.model = self.real(C=2 * self.C if two else self.C, **self.kwargs).fit(X, y, sample_weight)
        self.coef_, self.intercept_, self.classes_ = self.model.coef_, self.model.intercept_, self.model.classes_
        return self

    def predict_proba(self, X):
        return self.model.predict_proba(X)

    def predict(self, X):
        return self.model.predict(X)


# --- noise ------------------------------------------------------------------------------------------------

class Draws:
    """A source of standard-normal noise draws, float32 as the official codes draw it (``FloatTensor.normal_``).

    ``Draws(seed)`` draws afresh from its own generator for each request of a shape; ``Draws(tensors=[...])``
    hands out the given tensors in order (their shapes must match the requests); ``Draws(zeros=True)`` zeros. ``shapes`` logs every request,
    so two sides fed from equal sources can be checked to have drawn the same number and shapes of vectors.
    """

    def __init__(self, seed: int | None = None, tensors: list[torch.Tensor] | None = None, zeros: bool = False):
        self.gen = torch.Generator().manual_seed(seed) if seed is not None else None
        self.queue, self.zeros = list(tensors or []), zeros
        self.shapes: list[tuple[int, ...]] = []

    def next(self, shape) -> torch.Tensor:
        shape = tuple(int(s) for s in shape)
        self.shapes.append(shape)
        if self.zeros:
            return torch.zeros(shape)
        if self.gen is not None:
            return _randn(*shape, generator=self.gen, dtype=torch.float32)
        if not self.queue:
            raise RuntimeError(f"noise source exhausted at a request of shape {shape}")
        out = self.queue.pop(0)
        if tuple(out.shape) != shape:
            raise RuntimeError(f"noise request of shape {shape}, but the next prepared draw is {tuple(out.shape)}")
        return out


# --- the official code's run time ---------------------------------------------------------------------------

def _cpu(x):
    if isinstance(x, torch.device) and x.type == "cuda":
        return torch.device("cpu")
    if isinstance(x, str) and x.startswith("cuda"):
        return "cpu"
    return x


class OfficialRuntime:
    """Context in which official code runs on the CPU in ``dtype`` with its noise fed from ``draws``.

    Records every ``backward()`` call's loss (``losses``) and its caller's locals (``frames``) so schedule weights
    computed as local variables can be read back; with ``record_only`` the backward pass itself is skipped (a
    schedule scan, under ``no_grad``). ``suspended()``
    restores torch for a moment (smie's step runs there in lockstep, untouched by these stand-ins).
    """

    def __init__(self, dtype: torch.dtype = torch.float32, draws: Draws | None = None, record_locals: tuple = (),
                 record_only: bool = False):
        self.dtype, self.draws, self.record_only = dtype, draws, record_only
        self.record_locals = tuple(record_locals)
        self.losses: list[float] = []
        self.frames: list[dict] = []
        self.last_loss: torch.Tensor | None = None
        self._saved: list[tuple[object, str, object]] = []
        self._depth = 0

    def _patches(self) -> list[tuple[object, str, object]]:
        T, M = torch.Tensor, torch.nn.Module
        orig_tensor_to, orig_module_to, orig_backward = T.to, M.to, T.backward
        orig_normal, dtype, rt = T.normal_, self.dtype, self

        def tensor_to(self, *args, **kwargs):
            return orig_tensor_to(self, *[_cpu(a) for a in args], **{k: _cpu(v) for k, v in kwargs.items()})

        def module_to(self, *args, **kwargs):
            return orig_module_to(self, *[_cpu(a) for a in args], **{k: _cpu(v) for k, v in kwargs.items()})

        def float_tensor(*args):
            if len(args) == 1 and isinstance(args[0], (list, tuple)):
                return torch.tensor(args[0], dtype=dtype)
            return torch.empty(*args, dtype=dtype)

        def long_tensor(*args):
            if len(args) == 1 and isinstance(args[0], (list, tuple)):
                return torch.tensor(args[0], dtype=torch.long)
            return torch.empty(*args, dtype=torch.long)

        def backward(self, *args, **kwargs):
            caller = sys._getframe(1).f_locals
            rt.last_loss = self.detach().clone()
            rt.losses.append(float(self.detach()))
            rt.frames.append({k: _plain(caller[k]) for k in rt.record_locals if k in caller})
            if rt.record_only:  # a schedule scan: the step's locals are all that is wanted
                return None
            return orig_backward(self, *args, **kwargs)

        def normal_(self, mean=0.0, std=1.0, *, generator=None):
            if rt.draws is None:
                return orig_normal(self, mean, std, generator=generator)
            with torch.no_grad():
                self.copy_(rt.draws.next(self.shape) * std + mean)
            return self

        patches = [(T, "cuda", lambda self, *a, **k: self), (M, "cuda", lambda self, *a, **k: self),
                   (T, "to", tensor_to), (M, "to", module_to), (T, "backward", backward), (T, "normal_", normal_),
                   (torch.cuda, "FloatTensor", float_tensor), (torch.cuda, "LongTensor", long_tensor)]
        if dtype == torch.float64:
            patches.append((T, "float", lambda self, *a, **k: self.to(torch.float64)))
        return patches

    def _apply(self) -> None:
        self._saved = []
        for obj, attr, new in self._patches():
            self._saved.append((obj, attr, getattr(obj, attr)))
            setattr(obj, attr, new)

    def _restore(self) -> None:
        for obj, attr, old in reversed(self._saved):
            setattr(obj, attr, old)
        self._saved = []

    def __enter__(self) -> "OfficialRuntime":
        if self._depth == 0:
            self._apply()
        self._depth += 1
        return self

    def __exit__(self, *exc) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._restore()

    @contextlib.contextmanager
    def suspended(self) -> Iterator[None]:
        """Plain torch for the duration (used to run smie's step inside the official loop)."""
        active = bool(self._saved)
        if active:
            self._restore()
        try:
            yield
        finally:
            if active:
                self._apply()


def _plain(value):
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value)
    if isinstance(value, (bool, int, float)):
        return float(value)
    return value


def hook_step(optimizer: torch.optim.Optimizer, before: Callable[[], None], after: Callable[[], None]) -> None:
    """Make ``optimizer.step()`` call ``before()`` (gradients are in place) and ``after()`` around the real step.

    This is how the bench runs smie in lockstep with an official training loop it does not control: the
    official code computes its loss and gradients, ``before`` runs smie's step on the same batch and noise and
    compares gradients, the official step runs, ``after`` compares parameters."""
    real = optimizer.step

    def step(*args, **kwargs):
        before()
        out = real(*args, **kwargs)
        after()
        return out

    optimizer.step = step
