"""Model validation: the checks a registered model version must pass before it may become
challenger. Run one with `ws.models.validate(...)`; the check types are here:

```python
from lakestack.models.validation import Comparison, MetadataRequirements, SliceThreshold, Threshold
```
"""

from lakestack.models.validation.checks import (
    CheckOutcome,
    CheckResult,
    Comparison,
    CustomCheck,
    MetadataRequirements,
    SliceThreshold,
    Threshold,
)
from lakestack.models.validation.result import Evaluation, ModelScores, ValidationResult

__all__ = [
    "CheckOutcome",
    "CheckResult",
    "Comparison",
    "CustomCheck",
    "Evaluation",
    "MetadataRequirements",
    "ModelScores",
    "SliceThreshold",
    "Threshold",
    "ValidationResult",
]
