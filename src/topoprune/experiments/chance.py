"""Is a dense baseline better than guessing? A comparison against one that is not says nothing.

A baseline counts as **at chance** when its test accuracy is at most ``CHANCE_MARGIN`` times the
chance level ``100 / num_classes`` percent (10 classes: at most 12.5 %). Every pruned model then
"recovers" to it at once, so epochs-to-recover and accuracy differences compare noise. The run
still completes (the user may want the numbers); the run log, the report and the command line
say so in the sentence :func:`chance_warning` writes.
"""

from __future__ import annotations

__all__ = ["CHANCE_MARGIN", "chance_level", "near_chance", "chance_warning"]

CHANCE_MARGIN = 1.25  # a baseline within 25 % (relative) above chance counts as at chance


def chance_level(num_classes: int) -> float:
    """Accuracy of guessing, in percent: ``100 / num_classes``."""
    return 100.0 / num_classes


def near_chance(accuracy: float, num_classes: int) -> bool:
    """Whether ``accuracy`` (percent) is at most ``CHANCE_MARGIN`` times the chance level."""
    return accuracy <= CHANCE_MARGIN * chance_level(num_classes)


def chance_warning(model: str, accuracy: float, num_classes: int) -> str | None:
    """One sentence warning that ``model``'s baseline is at chance accuracy, or None if it is not."""
    if not near_chance(accuracy, num_classes):
        return None
    level = chance_level(num_classes)
    return (f"{model}: the baseline is at chance accuracy ({accuracy:.1f} %; chance is {level:.3g} % for "
            f"{num_classes} classes, and a baseline at most {CHANCE_MARGIN:g} times that counts as at chance); "
            "comparisons against it are not meaningful")
