"""Non-speech audio tagging (the seed card's AudioSet experiment): multi-label BCE on the mean-pooled
last hidden state, a linear head D -> number of classes (768 -> 108 for the card's setup), metric mAP.

mAP is the mean over classes (with at least one positive in dev) of average precision as
scikit-learn defines it, AP = Σ_n (R_n − R_{n−1}) P_n over distinct score thresholds. It is written
here (vectorised per class) because scikit-learn is only a test dependency of the harness; the tests
check it against ``sklearn.metrics.average_precision_score``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from harness import hookimpl
from harness.api import FinetunePlugin, FinetuneResult, PreparedCorpus, StableFTParams, StageContext

if TYPE_CHECKING:
    from harness.api import UpstreamModel


class NonspeechParams(StableFTParams):
    corpus: str | None = Field(None, description="the recipe corpus with `tags` labels (e.g. AudioSet)")


class Nonspeech(FinetunePlugin[NonspeechParams]):
    name = "nonspeech"
    version = "1"
    summary = "Stable fine-tuning on multi-label audio tagging (BCE on mean-pooled last layer, mAP)"

    def finetune(
        self, upstream: UpstreamModel, corpora: dict[str, PreparedCorpus], params: NonspeechParams, ctx: StageContext
    ) -> FinetuneResult:
        from plugins.finetune._tagging import run  # torch: loaded when the scenario trains

        return run(upstream, corpora, params, ctx)


@hookimpl
def harness_register_finetune(registry):
    registry.add(Nonspeech)
