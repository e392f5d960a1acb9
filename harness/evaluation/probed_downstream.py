"""The downstream plugin base of probed tasks (:class:`ProbedDownstream`). Imports no torch: the
probe (:mod:`harness.evaluation.probe`) is loaded when a downstream evaluates."""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, ClassVar, TypeVar

from harness.core.interfaces import DownstreamPlugin, EvalResult, Task
from harness.core.manifest import PreparedCorpus
from harness.core.stage import StageContext
from harness.evaluation.probe_settings import ProbeParams, ProbeSettings, resolve_settings

if TYPE_CHECKING:
    from harness.core.model_types import UpstreamModel

__all__ = ["ProbedDownstream"]

PP = TypeVar("PP", bound=ProbeParams)


class ProbedDownstream(DownstreamPlugin[PP]):
    """A downstream evaluated by a probe on the frozen upstream (:func:`harness.evaluation.probe.probe_corpus`).

    A subclass declares its parameters (``ProbedDownstream[MyParams]``, a :class:`ProbeParams`),
    its ``protocols`` table (``embedded`` and ``superb``, picked by ``protocol``) and
    :meth:`make_task`; ``evaluate`` is shared.
    """

    Params = ProbeParams
    #: protocol name -> the probe's settings under it
    protocols: ClassVar[dict[str, ProbeSettings]]
    #: reads the frame cache (a task on frames); False for tasks on pooled means (``harness plan`` sizes it)
    frame_cache: ClassVar[bool] = True

    @abstractmethod
    def make_task(self, corpus: PreparedCorpus, params: PP) -> Task:
        """The task on ``corpus`` (shared with supervised fine-tuning)."""

    def settings(self, params: PP) -> ProbeSettings:
        """How the probe trains: the protocol's settings with the overrides ``params`` sets.

        Override to apply parameters of the subclass's own (``er``'s folds)."""
        return resolve_settings(params, self.protocols)

    def evaluate(self, upstream: UpstreamModel, corpus: PreparedCorpus, params: PP, ctx: StageContext) -> EvalResult:
        from harness.evaluation.probe import probe_corpus  # torch: loaded when a downstream evaluates

        return probe_corpus(self.make_task(corpus, params), upstream, corpus, self.settings(params), ctx)
